//! `moim participants list|get|remove|mute`.

use std::process::ExitCode;

use clap::Subcommand;
use moim_proto::lk;

use crate::cli::api::{self, admin, cell, print_json, print_table, ApiArgs};

#[derive(Subcommand)]
pub enum ParticipantsCmd {
    /// List the participants of a room.
    List {
        #[arg(long)]
        room: String,
    },
    /// Show one participant and its tracks.
    Get {
        #[arg(long)]
        room: String,
        #[arg(long)]
        identity: String,
    },
    /// Disconnect a participant.
    Remove {
        #[arg(long)]
        room: String,
        #[arg(long)]
        identity: String,
    },
    /// Mute (or with --unmute, unmute) a published track.
    Mute {
        #[arg(long)]
        room: String,
        #[arg(long)]
        identity: String,
        /// The track's sid (TR_…); `participants get` lists them.
        #[arg(long)]
        track: String,
        #[arg(long)]
        unmute: bool,
    },
}

pub fn run(args: ApiArgs, cmd: ParticipantsCmd) -> ExitCode {
    api::run(args, |api| async move {
        match cmd {
            ParticipantsCmd::List { room } => {
                let r: lk::ListParticipantsResponse = api
                    .call(
                        "ListParticipants",
                        admin(&room),
                        &lk::ListParticipantsRequest { room },
                    )
                    .await?;
                if api.json() {
                    print_json(&r);
                } else if r.participants.is_empty() {
                    println!("nobody is in the room");
                } else {
                    print_participants(&r.participants);
                }
            }
            ParticipantsCmd::Get { room, identity } => {
                let p: lk::ParticipantInfo = api
                    .call(
                        "GetParticipant",
                        admin(&room),
                        &lk::RoomParticipantIdentity {
                            room,
                            identity,
                            ..Default::default()
                        },
                    )
                    .await?;
                if api.json() {
                    print_json(&p);
                } else {
                    print_participants(std::slice::from_ref(&p));
                    if !p.tracks.is_empty() {
                        println!();
                        print_tracks(&p.tracks);
                    }
                }
            }
            ParticipantsCmd::Remove { room, identity } => {
                let req = lk::RoomParticipantIdentity {
                    room: room.clone(),
                    identity: identity.clone(),
                    ..Default::default()
                };
                let _: lk::RemoveParticipantResponse =
                    api.call("RemoveParticipant", admin(&room), &req).await?;
                if api.json() {
                    println!("{{}}");
                } else {
                    println!("removed {identity} from {room}");
                }
            }
            ParticipantsCmd::Mute {
                room,
                identity,
                track,
                unmute,
            } => {
                let req = lk::MuteRoomTrackRequest {
                    room: room.clone(),
                    identity,
                    track_sid: track,
                    muted: !unmute,
                };
                let r: lk::MuteRoomTrackResponse =
                    api.call("MutePublishedTrack", admin(&room), &req).await?;
                if api.json() {
                    print_json(&r);
                } else if let Some(t) = r.track {
                    print_tracks(&[t]);
                }
            }
        }
        Ok(())
    })
}

fn print_participants(ps: &[lk::ParticipantInfo]) {
    let rows: Vec<Vec<String>> = ps
        .iter()
        .map(|p| {
            let state = lk::participant_info::State::try_from(p.state)
                .map(|s| s.as_str_name().to_lowercase())
                .unwrap_or_default();
            vec![
                p.identity.clone(),
                p.sid.clone(),
                cell(&p.name),
                state,
                p.tracks.len().to_string(),
                cell(&p.metadata),
            ]
        })
        .collect();
    print_table(
        &["IDENTITY", "SID", "NAME", "STATE", "TRACKS", "METADATA"],
        &rows,
    );
}

fn print_tracks(ts: &[lk::TrackInfo]) {
    let rows: Vec<Vec<String>> = ts
        .iter()
        .map(|t| {
            let kind = lk::TrackType::try_from(t.r#type)
                .map(|k| k.as_str_name().to_lowercase())
                .unwrap_or_default();
            vec![
                t.sid.clone(),
                kind,
                t.name.clone(),
                t.mime_type.clone(),
                if t.muted { "yes".into() } else { "no".into() },
            ]
        })
        .collect();
    print_table(&["TRACK", "KIND", "NAME", "CODEC", "MUTED"], &rows);
}
