//! Rooms by name. The map is touched on join and on room close only, never
//! on the signal or media path.

use std::collections::HashMap;
use std::sync::Arc;

use moim_sfu::MediaPlane;
use parking_lot::Mutex;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::ServerConfig;
use crate::room::{Room, RoomInput};

pub struct RoomRegistry {
    rooms: Mutex<HashMap<String, UnboundedSender<RoomInput>>>,
}

impl RoomRegistry {
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            rooms: Mutex::new(HashMap::new()),
        })
    }

    /// The room's inbox, creating the room on first use.
    pub fn get_or_create(
        self: &Arc<Self>,
        name: &str,
        config: &Arc<ServerConfig>,
        media: &Arc<MediaPlane>,
    ) -> UnboundedSender<RoomInput> {
        let mut rooms = self.rooms.lock();
        if let Some(tx) = rooms.get(name).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let tx = Room::spawn(
            name.to_string(),
            config.clone(),
            media.clone(),
            self.clone(),
        );
        rooms.insert(name.to_string(), tx.clone());
        tx
    }

    /// Called by a closing room; false if a newer room took the name.
    pub fn remove_if_same(&self, name: &str, tx: &UnboundedSender<RoomInput>) -> bool {
        let mut rooms = self.rooms.lock();
        match rooms.get(name) {
            Some(current) if current.same_channel(tx) => {
                rooms.remove(name);
                true
            }
            Some(_) => true,
            None => true,
        }
    }
}
