//! Rooms as the app keeps them: a title, who may come in and how, and
//! who hosts. The media room of the same name exists only while people are
//! in it; this record outlives it.

use sqlx::any::AnyRow;
use sqlx::Row;

use crate::store::{Store, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: String,
    pub title: String,
    pub settings: RoomSettings,
    pub created_by: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomSettings {
    pub guests_allowed: bool,
    pub lobby: bool,
    pub e2ee_required: bool,
}

impl Default for RoomSettings {
    /// Members only, no lobby, E2EE not required.
    fn default() -> Self {
        Self {
            guests_allowed: false,
            lobby: false,
            e2ee_required: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Host,
    /// A logged-in user who is not a host.
    Participant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::Participant => "participant",
        }
    }
}

/// A room id: three groups of lowercase letters (`abc-defg-hij`), easy to
/// read out and type, from 26^10 (about 2^47) choices, so ids are not
/// guessed.
pub fn new_room_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    let mut group = |n: usize| -> String {
        (0..n)
            .map(|_| rng.random_range(b'a'..=b'z') as char)
            .collect()
    };
    format!("{}-{}-{}", group(3), group(4), group(3))
}

impl Store {
    pub async fn create_room(
        &self,
        title: &str,
        settings: RoomSettings,
        host: &str,
        now: i64,
    ) -> Result<Room, StoreError> {
        let id = new_room_id();
        let mut tx = self.pool().begin().await?;
        sqlx::query(
            "INSERT INTO rooms (id, title, guests_allowed, lobby, e2ee_required, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(title)
        .bind(i64::from(settings.guests_allowed))
        .bind(i64::from(settings.lobby))
        .bind(i64::from(settings.e2ee_required))
        .bind(host)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO room_members (room_id, user_id, role) VALUES ($1, $2, 'host')")
            .bind(&id)
            .bind(host)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Room {
            id,
            title: title.to_string(),
            settings,
            created_by: host.to_string(),
            created_at: now,
        })
    }

    pub async fn room(&self, id: &str) -> Result<Option<Room>, StoreError> {
        let row = sqlx::query(
            "SELECT id, title, guests_allowed, lobby, e2ee_required, created_by, created_at \
             FROM rooms WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| room_from(&r)).transpose()
    }

    /// The rooms `user` belongs to, newest first, each with their role.
    pub async fn rooms_of(&self, user: &str) -> Result<Vec<(Room, Role)>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.title, r.guests_allowed, r.lobby, r.e2ee_required, r.created_by, r.created_at, m.role \
             FROM rooms r JOIN room_members m ON m.room_id = r.id \
             WHERE m.user_id = $1 ORDER BY r.created_at DESC, r.id",
        )
        .bind(user)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((room_from(r)?, role_from(r.try_get("role")?))))
            .collect()
    }

    pub async fn role(&self, room: &str, user: &str) -> Result<Role, StoreError> {
        let row = sqlx::query("SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2")
            .bind(room)
            .bind(user)
            .fetch_optional(self.pool())
            .await?;
        let role: Option<String> = row.map(|r| r.try_get("role")).transpose()?;
        Ok(role.map_or(Role::Participant, role_from))
    }

    pub async fn update_room(&self, room: &Room) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE rooms SET title = $1, guests_allowed = $2, lobby = $3, e2ee_required = $4 WHERE id = $5",
        )
        .bind(&room.title)
        .bind(i64::from(room.settings.guests_allowed))
        .bind(i64::from(room.settings.lobby))
        .bind(i64::from(room.settings.e2ee_required))
        .bind(&room.id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Deletes the room; its members go with it (both stores cascade).
    pub async fn delete_room(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM rooms WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

fn role_from(stored: String) -> Role {
    if stored == "host" {
        Role::Host
    } else {
        Role::Participant
    }
}

fn room_from(r: &AnyRow) -> Result<Room, StoreError> {
    Ok(Room {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        settings: RoomSettings {
            guests_allowed: r.try_get::<i64, _>("guests_allowed")? != 0,
            lobby: r.try_get::<i64, _>("lobby")? != 0,
            e2ee_required: r.try_get::<i64, _>("e2ee_required")? != 0,
        },
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn room_ids_are_three_readable_groups() {
        let id = super::new_room_id();
        let groups: Vec<&str> = id.split('-').collect();
        assert_eq!(
            groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
            [3, 4, 3],
            "{id}"
        );
        assert!(
            id.chars().all(|c| c == '-' || c.is_ascii_lowercase()),
            "{id}"
        );
        assert_ne!(super::new_room_id(), id);
    }
}
