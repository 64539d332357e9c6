//! Rooms by name. The map is touched on join and on room close only, never
//! on the signal or media path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use moim_sfu::MediaPlane;
use parking_lot::Mutex;
use tokio::sync::mpsc::UnboundedSender;

use crate::config::ServerConfig;
use crate::room::{Room, RoomInput};
use crate::webhook::Notifier;

pub struct RoomRegistry {
    rooms: Mutex<HashMap<String, UnboundedSender<RoomInput>>>,
    webhooks: Notifier,
    /// Participants in every room, counted by the rooms themselves: the
    /// drain waits for it to reach zero.
    census: Arc<AtomicUsize>,
}

impl RoomRegistry {
    pub fn with_webhooks(webhooks: Notifier) -> Arc<Self> {
        Arc::new(Self {
            rooms: Mutex::new(HashMap::new()),
            webhooks,
            census: Arc::default(),
        })
    }

    /// The counter a room adds its participants to.
    pub fn census(&self) -> Arc<AtomicUsize> {
        self.census.clone()
    }

    /// Participants in all rooms, including those waiting to resume.
    pub fn participant_count(&self) -> usize {
        self.census.load(Ordering::Acquire)
    }

    pub fn webhooks(&self) -> Notifier {
        self.webhooks.clone()
    }

    /// An open room's inbox; never creates one.
    pub fn get(&self, name: &str) -> Option<UnboundedSender<RoomInput>> {
        self.rooms
            .lock()
            .get(name)
            .filter(|tx| !tx.is_closed())
            .cloned()
    }

    /// Every open room, by name.
    pub fn snapshot(&self) -> Vec<(String, UnboundedSender<RoomInput>)> {
        self.rooms
            .lock()
            .iter()
            .filter(|(_, tx)| !tx.is_closed())
            .map(|(n, tx)| (n.clone(), tx.clone()))
            .collect()
    }

    /// Takes a room out of the registry (DeleteRoom): the next join creates
    /// a fresh room while the old one closes.
    pub fn remove(&self, name: &str) -> Option<UnboundedSender<RoomInput>> {
        self.rooms.lock().remove(name).filter(|tx| !tx.is_closed())
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

    /// Called by a closing room: forgets it, unless a newer room (after a
    /// DeleteRoom) already took the name.
    pub fn remove_if_same(&self, name: &str, tx: &UnboundedSender<RoomInput>) {
        let mut rooms = self.rooms.lock();
        if rooms
            .get(name)
            .is_some_and(|current| current.same_channel(tx))
        {
            rooms.remove(name);
            // The map keeps the capacity of its busiest hour otherwise.
            if rooms.capacity() > 64 && rooms.len() * 4 < rooms.capacity() {
                let keep = rooms.len() * 2;
                rooms.shrink_to(keep);
            }
        }
    }
}
