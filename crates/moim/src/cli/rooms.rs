//! `moim rooms list|create|delete`.

use std::process::ExitCode;

use clap::Subcommand;
use moim_proto::lk;
use moim_proto::token::VideoGrant;

use crate::cli::api::{self, cell, print_json, print_table, ApiArgs};

#[derive(Subcommand)]
pub enum RoomsCmd {
    /// List open rooms.
    List {
        /// Only these rooms.
        names: Vec<String>,
    },
    /// Create an empty room (or configure an existing one).
    Create {
        name: String,
        /// Seconds an empty room stays open.
        #[arg(long, default_value_t = 0)]
        empty_timeout: u32,
        #[arg(long, default_value_t = 0)]
        max_participants: u32,
        #[arg(long, default_value = "")]
        metadata: String,
    },
    /// Delete a room, disconnecting everyone in it.
    Delete { name: String },
}

pub fn run(args: ApiArgs, cmd: RoomsCmd) -> ExitCode {
    api::run(args, |api| async move {
        match cmd {
            RoomsCmd::List { names } => {
                let grant = VideoGrant {
                    room_list: true,
                    ..Default::default()
                };
                let r: lk::ListRoomsResponse = api
                    .call("ListRooms", grant, &lk::ListRoomsRequest { names })
                    .await?;
                if api.json() {
                    print_json(&r);
                } else if r.rooms.is_empty() {
                    println!("no rooms");
                } else {
                    print_rooms(&r.rooms);
                }
            }
            RoomsCmd::Create {
                name,
                empty_timeout,
                max_participants,
                metadata,
            } => {
                let req = lk::CreateRoomRequest {
                    name,
                    empty_timeout,
                    max_participants,
                    metadata,
                    ..Default::default()
                };
                let room: lk::Room = api.call("CreateRoom", create(), &req).await?;
                if api.json() {
                    print_json(&room);
                } else {
                    print_rooms(&[room]);
                }
            }
            RoomsCmd::Delete { name } => {
                let _: lk::DeleteRoomResponse = api
                    .call(
                        "DeleteRoom",
                        create(),
                        &lk::DeleteRoomRequest { room: name.clone() },
                    )
                    .await?;
                if api.json() {
                    println!("{{}}");
                } else {
                    println!("deleted room {name}");
                }
            }
        }
        Ok(())
    })
}

fn create() -> VideoGrant {
    VideoGrant {
        room_create: true,
        ..Default::default()
    }
}

fn print_rooms(rooms: &[lk::Room]) {
    let rows: Vec<Vec<String>> = rooms
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.sid.clone(),
                r.num_participants.to_string(),
                r.num_publishers.to_string(),
                if r.max_participants == 0 {
                    "-".into()
                } else {
                    r.max_participants.to_string()
                },
                cell(&r.metadata),
            ]
        })
        .collect();
    print_table(
        &[
            "NAME",
            "SID",
            "PARTICIPANTS",
            "PUBLISHERS",
            "MAX",
            "METADATA",
        ],
        &rows,
    );
}
