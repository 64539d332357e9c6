//! Where rooms are found by name. Signal connections, the server API and
//! the drain go through [`RoomDirectory`]; this process's rooms are in
//! [`LocalDirectory`]. A directory is touched on join, on server-API calls
//! and on room close, never on the signal or media path.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use moim_sfu::MediaPlane;
use parking_lot::Mutex;

use crate::config::ServerConfig;
use crate::room::{self, RoomConfig, RoomEnv, RoomHandle};
use crate::webhook::Notifier;

pub trait RoomDirectory: Send + Sync {
    /// An open room; never creates one.
    fn get(&self, name: &str) -> Option<RoomHandle>;
    /// The room, started on first use.
    fn get_or_create(&self, name: &str) -> RoomHandle;
    /// Takes a room out of the directory (DeleteRoom): the next join starts
    /// a fresh room while the old one closes.
    fn remove(&self, name: &str) -> Option<RoomHandle>;
    /// Every open room, by name.
    fn list(&self) -> Vec<(String, RoomHandle)>;
    /// Participants in all rooms, including those waiting to resume.
    fn participant_count(&self) -> usize;
}

/// The rooms of this process.
#[derive(Clone)]
pub struct LocalDirectory(Arc<Inner>);

struct Inner {
    rooms: Mutex<HashMap<String, RoomHandle>>,
    config: Arc<ServerConfig>,
    media: Arc<MediaPlane>,
    webhooks: Notifier,
    /// Participants in every room, counted by the rooms themselves.
    census: Arc<AtomicUsize>,
}

impl LocalDirectory {
    pub fn new(config: Arc<ServerConfig>, media: Arc<MediaPlane>, webhooks: Notifier) -> Self {
        Self(Arc::new(Inner {
            rooms: Mutex::new(HashMap::new()),
            config,
            media,
            webhooks,
            census: Arc::default(),
        }))
    }

    fn start(&self, name: &str) -> RoomHandle {
        let config = RoomConfig {
            empty_timeout: self.0.config.empty_timeout,
            departure_timeout: self.0.config.departure_timeout,
            max_participants: 0,
            webhooks: self.0.webhooks.enabled(),
            node_id: self.0.config.node_id.clone(),
        };
        let env = RoomEnv {
            media: self.0.media.clone(),
            webhooks: self.0.webhooks.clone(),
            census: self.0.census.clone(),
            keys: self.0.config.keys.clone(),
        };
        let (handle, run) = room::spawn(name.to_string(), config, env);
        let directory = self.0.clone();
        let (name, me) = (name.to_string(), handle.clone());
        tokio::spawn(async move {
            run.await;
            directory.forget(&name, &me);
        });
        handle
    }
}

impl Inner {
    /// Forgets a closed room, unless a newer room (after a DeleteRoom)
    /// already took the name.
    fn forget(&self, name: &str, closed: &RoomHandle) {
        let mut rooms = self.rooms.lock();
        if rooms.get(name).is_some_and(|r| r.same_room(closed)) {
            rooms.remove(name);
            // The map keeps the capacity of its busiest hour otherwise.
            if rooms.capacity() > 64 && rooms.len() * 4 < rooms.capacity() {
                let keep = rooms.len() * 2;
                rooms.shrink_to(keep);
            }
        }
    }
}

impl RoomDirectory for LocalDirectory {
    fn get(&self, name: &str) -> Option<RoomHandle> {
        self.0
            .rooms
            .lock()
            .get(name)
            .filter(|r| !r.is_closed())
            .cloned()
    }

    fn get_or_create(&self, name: &str) -> RoomHandle {
        let mut rooms = self.0.rooms.lock();
        if let Some(r) = rooms.get(name).filter(|r| !r.is_closed()) {
            return r.clone();
        }
        let handle = self.start(name);
        rooms.insert(name.to_string(), handle.clone());
        handle
    }

    fn remove(&self, name: &str) -> Option<RoomHandle> {
        self.0.rooms.lock().remove(name).filter(|r| !r.is_closed())
    }

    fn list(&self) -> Vec<(String, RoomHandle)> {
        self.0
            .rooms
            .lock()
            .iter()
            .filter(|(_, r)| !r.is_closed())
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect()
    }

    fn participant_count(&self) -> usize {
        self.0.census.load(Ordering::Acquire)
    }
}
