//! Bearer tokens (`docs/http.md`, "Who is calling"): making one for a user,
//! listing and revoking them, and [`Engine::authenticate`], which turns a
//! token back into its user. A token is `jl_` followed by 64 lowercase hex
//! digits: 32 random bytes from the OS. The store keeps only the SHA-256 of
//! the whole printed token (`Event::TokenCreated`), so neither the log nor a
//! checkpoint holds anything that authenticates. The rules on whose tokens
//! a user may touch: an administrator (Write at Organization depth, as for
//! every administrative command) any user's; anyone else their own only.
//! The limits: `domain::token` and `docs/limits.md`.

use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Engine, Session};
use crate::domain::limits::{check_text, MAX_NAME_CHARS};
use crate::domain::{
    DomainError, Event, Privilege, Timestamp, DEFAULT_TOKEN_DAYS, MAX_LIVE_TOKENS_PER_USER, MAX_TOKEN_DAYS,
    MICROS_PER_DAY,
};
use crate::error::Error;
use crate::projection::Projection;

/// What every token starts with: it says what the string is (and lets a
/// secret scanner find one pasted where it should not be).
pub const TOKEN_PREFIX: &str = "jl_";
/// Random bytes in a token.
const SECRET_BYTES: usize = 32;

/// A token just made: the only time its secret is ever seen. Show it to
/// its owner once; the store cannot show it again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    /// The token's id (for `token list` and `token revoke`).
    pub id: Uuid,
    /// The bearer token itself: `jl_` and 64 lowercase hex digits.
    pub token: String,
    /// The joblog user it acts as.
    pub user: String,
    /// When it stops authenticating (`None`: never).
    pub expires: Option<Timestamp>,
}

/// A token as listed: everything but its secret and its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// The token's id.
    pub id: Uuid,
    /// The joblog user it acts as.
    pub user: String,
    /// Its label, if its creator gave one.
    pub name: Option<String>,
    /// When it was made.
    pub created: Timestamp,
    /// When it stops authenticating (`None`: never).
    pub expires: Option<Timestamp>,
    /// Whether it was revoked.
    pub revoked: bool,
}

/// SHA-256 of a well-formed token (`jl_` and 64 lowercase hex digits);
/// `None` for anything else, which therefore never reaches a lookup.
fn token_hash(token: &str) -> Option<[u8; 32]> {
    let hex = token.strip_prefix(TOKEN_PREFIX)?;
    if hex.len() != 2 * SECRET_BYTES || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    Some(Sha256::digest(token.as_bytes()).into())
}

/// A new token's text: `jl_` and 32 bytes from the OS's random source as
/// lowercase hex.
fn new_secret() -> Result<String, Error> {
    let mut bytes = [0u8; SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| Error::Io {
        path: "getrandom(2), the OS's random source".into(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let mut text = String::with_capacity(TOKEN_PREFIX.len() + 2 * SECRET_BYTES);
    text.push_str(TOKEN_PREFIX);
    for b in bytes {
        text.push_str(&format!("{b:02x}"));
    }
    Ok(text)
}

impl Engine {
    /// The joblog user bearer token `token` acts as. Refused with
    /// [`DomainError::Unauthenticated`], whatever the reason (malformed,
    /// unknown, expired, revoked, or its user deactivated), so that a
    /// caller learns nothing about which tokens exist. Reads only; the
    /// lookup is by the token's hash (the stored hashes are never shown, so
    /// timing tells nothing about a secret).
    pub fn authenticate(&self, token: &str) -> Result<String, Error> {
        let refused = || Error::Domain(DomainError::Unauthenticated);
        let hash = token_hash(token).ok_or_else(refused)?;
        let now = self.inner.clock.now();
        let state = self.state();
        let t = state.tokens().by_hash(&hash).filter(|t| t.is_live(now)).ok_or_else(refused)?;
        let user = state.directory().user(&t.user).ok().filter(|u| u.active).ok_or_else(refused)?;
        Ok(user.name.clone())
    }
}

impl Session {
    /// Makes a bearer token for `user`, named `name`, that expires after
    /// `expires_in_days` days (1 to `MAX_TOKEN_DAYS`; `None`: 90,
    /// `DEFAULT_TOKEN_DAYS`), recorded as a `TokenCreated` event holding
    /// only its hash. An administrator (Write at Organization depth) makes
    /// one for any active user, anyone else for themself only
    /// ([`DomainError::Denied`] otherwise, checked before anything about
    /// `user` is said). Refused too: a name that is empty, too long or
    /// holds a control character; a deactivated or unknown user; a user who
    /// holds `MAX_LIVE_TOKENS_PER_USER` live tokens already.
    pub fn create_token(
        &self,
        user: &str,
        name: Option<&str>,
        expires_in_days: Option<u32>,
    ) -> Result<NewToken, Error> {
        if let Some(n) = name {
            if n.is_empty() {
                return Err(DomainError::Invalid { what: "token name", reason: "it is empty".into() }.into());
            }
            check_text("token name", n, MAX_NAME_CHARS)?;
        }
        let days = expires_in_days.unwrap_or(DEFAULT_TOKEN_DAYS);
        if !(1..=MAX_TOKEN_DAYS).contains(&days) {
            return Err(DomainError::Invalid {
                what: "token expiry",
                reason: format!("{days} days; a token lives from 1 to {MAX_TOKEN_DAYS} days"),
            }
            .into());
        }
        let secret = new_secret()?;
        let hash: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        self.engine.commit(self.actor(), |state, now| {
            self.check_may_touch(state, user)?;
            let owner = state.directory().user(user)?;
            if !owner.active {
                return Err(DomainError::UserDeactivated { name: user.into() }.into());
            }
            if state.tokens().live_count(user, now) >= MAX_LIVE_TOKENS_PER_USER {
                return Err(DomainError::Invalid {
                    what: "token",
                    reason: format!(
                        "{user} holds {MAX_LIVE_TOKENS_PER_USER} live tokens already, the most allowed (docs/limits.md); revoke one first"
                    ),
                }
                .into());
            }
            let id = Uuid::now_v7();
            let expires = Some(now.plus_micros(i64::from(days) * MICROS_PER_DAY));
            let event =
                Event::TokenCreated { id, user: user.into(), name: name.map(str::to_string), hash, expires };
            Ok((vec![event], NewToken { id, token: secret, user: user.into(), expires }))
        })
    }

    /// The tokens this user may see: every one for an administrator, their
    /// own otherwise; revoked and expired ones too, oldest first. Never a
    /// secret nor a hash.
    pub fn tokens(&self) -> Result<Vec<TokenInfo>, Error> {
        let state = self.engine.state();
        let admin = self.is_token_administrator(&state)?;
        Ok(state
            .tokens()
            .iter()
            .filter(|t| admin || t.user == self.user)
            .map(|t| TokenInfo {
                id: t.id,
                user: t.user.clone(),
                name: t.name.clone(),
                created: t.created,
                expires: t.expires,
                revoked: t.revoked,
            })
            .collect())
    }

    /// Revokes token `id`, recorded as a `TokenRevoked` event: it no longer
    /// authenticates. An administrator revokes anyone's, anyone else their
    /// own; another user's token is, to them, not found
    /// (`DomainError::NotFound`, kind "token", as for an unknown id). A
    /// token revoked already is refused (`DomainError::Invalid`).
    pub fn revoke_token(&self, id: Uuid) -> Result<(), Error> {
        self.engine.commit(self.actor(), |state, _| {
            let admin = self.is_token_administrator(state)?;
            let not_found = || DomainError::NotFound { kind: "token", name: id.to_string() };
            let t = state.tokens().get(id).ok_or_else(not_found)?;
            if !admin && t.user != self.user {
                return Err(not_found().into());
            }
            state.tokens().check_revocable(id)?;
            Ok((vec![Event::TokenRevoked { id }], ()))
        })
    }

    /// Whether this user administers every token (Write at Organization
    /// depth); refused when the user was deactivated since the session began.
    fn is_token_administrator(&self, state: &Projection) -> Result<bool, Error> {
        let dir = state.directory();
        if !dir.user(&self.user)?.active {
            return Err(DomainError::UserDeactivated { name: self.user.clone() }.into());
        }
        Ok(dir.check(&self.user, Privilege::Write, None).is_ok())
    }

    /// Refuses unless this user may make or touch `user`'s tokens: their
    /// own, or anyone's for an administrator (the refusal names what an
    /// administrator has).
    fn check_may_touch(&self, state: &Projection, user: &str) -> Result<(), Error> {
        if self.is_token_administrator(state)? || user == self.user {
            return Ok(());
        }
        Ok(state.directory().check(&self.user, Privilege::Write, None)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_well_formed_tokens_are_hashed() {
        let good = new_secret().unwrap();
        assert_eq!(good.len(), 67);
        assert!(token_hash(&good).is_some());
        assert_ne!(new_secret().unwrap(), good, "two tokens differ");
        for bad in [
            "",
            "jl_",
            &good[..66],
            &format!("{good}0"),
            &good.to_uppercase(),
            &good.replacen("jl_", "xx_", 1),
            &format!("jl_{}", "g".repeat(64)),
            &format!(" {}", &good[1..]),
        ] {
            assert_eq!(token_hash(bad), None, "{bad:?}");
        }
        // The hash is of the whole printed token.
        let want: [u8; 32] = Sha256::digest(good.as_bytes()).into();
        assert_eq!(token_hash(&good), Some(want));
    }
}
