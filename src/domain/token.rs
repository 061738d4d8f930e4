//! Bearer tokens: who a caller over HTTP is (`docs/http.md`, "Who is
//! calling"). A token belongs to one joblog user and acts as that user,
//! with that user's privileges. The store keeps only the SHA-256 of the
//! printed token (the engine makes and hashes it, `engine/tokens.rs`), so
//! the log never holds a secret. Tokens are never removed, only revoked.
//!
//! The rules (`docs/limits.md`, "Tokens"): a token's name is a text of at
//! most `MAX_NAME_CHARS` characters; it expires after 1 to
//! [`MAX_TOKEN_DAYS`] days ([`DEFAULT_TOKEN_DAYS`] unless asked); a user
//! holds at most [`MAX_LIVE_TOKENS_PER_USER`] live ones (neither revoked
//! nor expired).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::time::Timestamp;
use super::DomainError;

/// The longest life of a token, in days (ten years).
pub const MAX_TOKEN_DAYS: u32 = 3650;
/// A token's life when its creator names none, in days.
pub const DEFAULT_TOKEN_DAYS: u32 = 90;
/// Live tokens (neither revoked nor expired) one user may hold at once.
pub const MAX_LIVE_TOKENS_PER_USER: usize = 100;

/// One token as the store keeps it: never the secret, only its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    /// The token's id (what `token list` shows and `token revoke` takes).
    pub id: Uuid,
    /// The joblog user it acts as.
    pub user: String,
    /// A label its creator gave it, if any.
    pub name: Option<String>,
    /// SHA-256 of the whole printed token.
    pub hash: [u8; 32],
    /// When it was created (its creation event's time).
    pub created: Timestamp,
    /// When it stops authenticating (`None`: never).
    pub expires: Option<Timestamp>,
    /// Whether it was revoked (revoked tokens stay listed).
    pub revoked: bool,
}

impl Token {
    /// Whether it still authenticates at `now`, its user aside: not
    /// revoked and not expired (a token expires at its `expires`).
    pub fn is_live(&self, now: Timestamp) -> bool {
        !self.revoked && self.expires.is_none_or(|e| now < e)
    }
}

/// Every token of a store, by id, with a lookup by hash. Kept next to the
/// directory of users in the projection and in its checkpoints.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(from = "BTreeMap<Uuid, Token>", into = "BTreeMap<Uuid, Token>")]
pub struct Tokens {
    by_id: BTreeMap<Uuid, Token>,
    /// Hash → id, rebuilt from `by_id` (never stored).
    by_hash: HashMap<[u8; 32], Uuid>,
}

impl PartialEq for Tokens {
    fn eq(&self, other: &Self) -> bool {
        // `by_hash` follows from `by_id`.
        self.by_id == other.by_id
    }
}

impl Eq for Tokens {}

impl From<BTreeMap<Uuid, Token>> for Tokens {
    fn from(by_id: BTreeMap<Uuid, Token>) -> Self {
        let by_hash = by_id.values().map(|t| (t.hash, t.id)).collect();
        Self { by_id, by_hash }
    }
}

impl From<Tokens> for BTreeMap<Uuid, Token> {
    fn from(t: Tokens) -> Self {
        t.by_id
    }
}

impl Tokens {
    /// Adds a token. Errors: `AlreadyExists` (its id or its hash is taken;
    /// the engine makes both at random, so in a log this is damage).
    pub fn add(&mut self, token: Token) -> Result<(), DomainError> {
        if self.by_id.contains_key(&token.id) || self.by_hash.contains_key(&token.hash) {
            return Err(DomainError::AlreadyExists { kind: "token", name: token.id.to_string() });
        }
        self.by_hash.insert(token.hash, token.id);
        self.by_id.insert(token.id, token);
        Ok(())
    }

    /// Revokes token `id`. Errors: `NotFound`; `Invalid` when it is revoked
    /// already.
    pub fn revoke(&mut self, id: Uuid) -> Result<(), DomainError> {
        self.check_revocable(id)?;
        if let Some(t) = self.by_id.get_mut(&id) {
            t.revoked = true;
        }
        Ok(())
    }

    /// Refuses revoking `id` when there is no such token or it is revoked
    /// already (nothing would change).
    pub fn check_revocable(&self, id: Uuid) -> Result<&Token, DomainError> {
        let t = self.get(id).ok_or_else(|| DomainError::NotFound { kind: "token", name: id.to_string() })?;
        if t.revoked {
            return Err(DomainError::Invalid { what: "token", reason: format!("token {id} is already revoked") });
        }
        Ok(t)
    }

    /// Token `id`.
    pub fn get(&self, id: Uuid) -> Option<&Token> {
        self.by_id.get(&id)
    }

    /// The token whose hash is `hash`.
    pub fn by_hash(&self, hash: &[u8; 32]) -> Option<&Token> {
        self.by_hash.get(hash).and_then(|id| self.by_id.get(id))
    }

    /// Every token, revoked and expired ones too, by id (ids are made in
    /// time order, so oldest first).
    pub fn iter(&self) -> impl Iterator<Item = &Token> {
        self.by_id.values()
    }

    /// How many tokens `user` holds that are live at `now`.
    pub fn live_count(&self, user: &str, now: Timestamp) -> usize {
        self.by_id.values().filter(|t| t.user == user && t.is_live(now)).count()
    }

    /// How many tokens there are, revoked and expired ones too.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: u8, user: &str, expires: Option<Timestamp>) -> Token {
        Token {
            id: Uuid::from_u128(u128::from(n)),
            user: user.into(),
            name: None,
            hash: [n; 32],
            created: Timestamp::from_micros(0),
            expires,
            revoked: false,
        }
    }

    #[test]
    fn add_lookup_revoke_and_live_count() {
        let mut t = Tokens::default();
        t.add(token(1, "alice", None)).unwrap();
        t.add(token(2, "alice", Some(Timestamp::from_micros(100)))).unwrap();
        t.add(token(3, "bob", None)).unwrap();
        assert!(matches!(t.add(token(1, "x", None)), Err(DomainError::AlreadyExists { kind: "token", .. })));
        let mut same_hash = token(9, "x", None);
        same_hash.hash = [2; 32];
        assert!(t.add(same_hash).is_err());
        assert_eq!(t.by_hash(&[2; 32]).map(|t| t.id), Some(Uuid::from_u128(2)));
        assert_eq!(t.live_count("alice", Timestamp::from_micros(99)), 2);
        // Expiry is exclusive: at `expires` the token no longer counts.
        assert_eq!(t.live_count("alice", Timestamp::from_micros(100)), 1);
        t.revoke(Uuid::from_u128(1)).unwrap();
        assert_eq!(t.live_count("alice", Timestamp::from_micros(0)), 1);
        assert!(matches!(t.revoke(Uuid::from_u128(1)), Err(DomainError::Invalid { .. })));
        assert!(matches!(t.revoke(Uuid::from_u128(7)), Err(DomainError::NotFound { kind: "token", .. })));
    }

    #[test]
    fn the_hash_index_is_rebuilt_after_a_round_trip() {
        let mut t = Tokens::default();
        t.add(token(4, "alice", None)).unwrap();
        let bytes = crate::codec::encode(&t).unwrap();
        let back: Tokens = crate::codec::decode(&bytes).unwrap();
        assert_eq!(back, t);
        assert_eq!(back.by_hash(&[4; 32]).map(|t| t.user.as_str()), Some("alice"));
    }
}
