//! `moim token`: access tokens.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::Subcommand;
use moim_proto::token::{self, VideoGrant};

use crate::fail;

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Mint an access token: for joining a room (--room, --identity), for
    /// the server API (--grant roomAdmin,roomList …), or both.
    Create {
        #[arg(long, env = "MOIM_API_KEY", default_value = "devkey")]
        api_key: String,
        #[arg(
            long,
            env = "MOIM_API_SECRET",
            default_value = "secret",
            hide_env_values = true
        )]
        api_secret: String,
        /// The room the token is for; with no --grant it may join it.
        #[arg(long, default_value = "")]
        room: String,
        #[arg(long, default_value = "")]
        identity: String,
        #[arg(long, default_value = "")]
        name: String,
        #[arg(long, default_value = "")]
        metadata: String,
        /// Grants: a comma list (roomJoin, roomAdmin, roomList, roomCreate,
        /// roomRecord, hidden, canUpdateOwnMetadata, canPublish=false, …) or a
        /// JSON video grant ('{"roomAdmin":true,"room":"r"}').
        #[arg(long)]
        grant: Option<String>,
        /// Lifetime: 3600, 90s, 30m, 6h or 7d.
        #[arg(long, default_value = "6h")]
        valid_for: String,
    },
}

pub fn run(cmd: TokenCmd) -> ExitCode {
    let TokenCmd::Create {
        api_key,
        api_secret,
        room,
        identity,
        name,
        metadata,
        grant,
        valid_for,
    } = cmd;
    let valid_for = match parse_duration(&valid_for) {
        Ok(d) => d,
        Err(e) => return fail(format!("--valid-for: {e}")),
    };
    let mut video = match grant.as_deref() {
        None => VideoGrant {
            room_join: true,
            ..Default::default()
        },
        Some(g) => match parse_grant(g) {
            Ok(v) => v,
            Err(e) => return fail(format!("--grant: {e}")),
        },
    };
    if video.room.is_empty() {
        video.room = room;
    }
    if video.room_join && (video.room.is_empty() || identity.is_empty()) {
        return fail("a token that joins a room needs --room and --identity (or pass --grant without roomJoin for an API token)");
    }
    let now = SystemTime::now();
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let claims = token::Claims {
        iss: api_key,
        sub: identity,
        name,
        metadata,
        video,
        nbf: secs.saturating_sub(1),
        exp: secs + valid_for.as_secs(),
        ..Default::default()
    };
    println!("{}", token::mint_claims(&api_secret, &claims));
    ExitCode::SUCCESS
}

/// "3600", "90s", "30m", "6h", "7d".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("\"{s}\" is not a duration like 3600, 90s, 30m, 6h or 7d"))?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => {
            return Err(format!(
                "unknown unit \"{unit}\" in \"{s}\"; use s, m, h or d"
            ))
        }
    };
    if n == 0 {
        return Err("a token must be valid for more than 0 seconds".into());
    }
    Ok(Duration::from_secs(n * mult))
}

/// A JSON video grant, or a comma list of grant names (`name` or `name=false`).
pub fn parse_grant(s: &str) -> Result<VideoGrant, String> {
    let s = s.trim();
    if s.starts_with('{') {
        return serde_json::from_str(s).map_err(|e| format!("not a JSON video grant: {e}"));
    }
    let mut g = VideoGrant::default();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (name, value) = match item.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (item, "true"),
        };
        let on = match value {
            "true" | "1" => true,
            "false" | "0" => false,
            _ => return Err(format!("\"{item}\": the value must be true or false")),
        };
        match name {
            "roomJoin" => g.room_join = on,
            "roomAdmin" => g.room_admin = on,
            "roomList" => g.room_list = on,
            "roomCreate" => g.room_create = on,
            "roomRecord" => g.room_record = on,
            "hidden" => g.hidden = on,
            "recorder" => g.recorder = on,
            "agent" => g.agent = on,
            "canPublish" => g.can_publish = Some(on),
            "canSubscribe" => g.can_subscribe = Some(on),
            "canPublishData" => g.can_publish_data = Some(on),
            "canUpdateOwnMetadata" => g.can_update_own_metadata = Some(on),
            other => {
                return Err(format!(
                    "unknown grant \"{other}\"; known: roomJoin, roomAdmin, roomList, roomCreate, roomRecord, hidden, recorder, agent, canPublish, canSubscribe, canPublishData, canUpdateOwnMetadata"
                ))
            }
        }
    }
    Ok(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grants_and_durations_parse_or_say_why() {
        let g = parse_grant("roomAdmin, roomList,canPublish=false").expect("list");
        assert!(g.room_admin && g.room_list && !g.can_publish() && !g.room_join);
        let j = parse_grant(r#"{"roomCreate":true,"room":"r"}"#).expect("json");
        assert!(j.room_create && j.room == "r");
        assert!(parse_grant("roomAdmn")
            .expect_err("typo")
            .contains("roomAdmin"));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("60"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5y").is_err());
    }
}
