//! `moim data send`: a data packet from the server to a room.

use std::process::ExitCode;

use clap::Subcommand;
use moim_proto::lk;

use crate::cli::api::{self, admin, ApiArgs};

#[derive(Subcommand)]
pub enum DataCmd {
    /// Send a data packet to everyone in a room, or to some identities.
    Send {
        #[arg(long)]
        room: String,
        /// The payload (UTF-8 text).
        payload: String,
        #[arg(long)]
        topic: Option<String>,
        /// Only to this identity; repeatable.
        #[arg(long = "identity")]
        identities: Vec<String>,
        /// Lossy instead of reliable delivery.
        #[arg(long)]
        lossy: bool,
    },
}

pub fn run(args: ApiArgs, cmd: DataCmd) -> ExitCode {
    let DataCmd::Send {
        room,
        payload,
        topic,
        identities,
        lossy,
    } = cmd;
    api::run(args, |api| async move {
        let kind = if lossy {
            lk::data_packet::Kind::Lossy
        } else {
            lk::data_packet::Kind::Reliable
        };
        let size = payload.len();
        #[allow(deprecated)]
        let req = lk::SendDataRequest {
            room: room.clone(),
            data: payload.into_bytes(),
            kind: kind as i32,
            destination_identities: identities,
            topic,
            ..Default::default()
        };
        let _: lk::SendDataResponse = api.call("SendData", admin(&room), &req).await?;
        if api.json() {
            println!("{{}}");
        } else {
            println!("sent {size} bytes to {room}");
        }
        Ok(())
    })
}
