//! Bearer tokens through the embedding API (`docs/http.md`, "Who is
//! calling"): who may make, list and revoke them, what authenticates and
//! what does not (expired, revoked, deactivated, malformed), the limits,
//! and that only a hash ever reaches the store.

use joblog::domain::{DomainError, MICROS_PER_DAY};
use joblog::{Error, NewToken};
use uuid::Uuid;

mod support;

use support::Fixture;

/// A store with `alice` and `bob` (basic users) next to the administrator.
fn store() -> Fixture {
    let f = Fixture::new();
    let admin = f.engine.session("admin").unwrap();
    admin.add_user("alice", "root", &["basic-user"]).unwrap();
    admin.add_user("bob", "root", &["basic-user"]).unwrap();
    f
}

fn unauthenticated(r: Result<String, Error>) -> bool {
    matches!(r, Err(Error::Domain(DomainError::Unauthenticated)))
}

#[test]
fn a_token_authenticates_as_its_user_and_nothing_else_does() {
    let f = store();
    let admin = f.engine.session("admin").unwrap();
    let made = admin.create_token("alice", Some("ci deploys"), Some(30)).unwrap();
    assert_eq!(made.user, "alice");
    assert!(made.token.starts_with("jl_") && made.token.len() == 67, "{}", made.token);
    assert_eq!(made.expires, Some(f.now().plus_micros(30 * MICROS_PER_DAY)));
    assert_eq!(f.engine.authenticate(&made.token).unwrap(), "alice");
    // One character off, another case, spaces, nothing: all the same refusal.
    let mut off = made.token.clone().into_bytes();
    off[10] = if off[10] == b'0' { b'1' } else { b'0' };
    let off = String::from_utf8(off).unwrap();
    for bad in [off.as_str(), &made.token.to_uppercase(), &format!(" {}", made.token), "", "jl_", "Bearer x"] {
        assert!(unauthenticated(f.engine.authenticate(bad)), "{bad:?}");
    }
    // A second token is another secret and another id.
    let again = admin.create_token("alice", None, None).unwrap();
    assert_ne!((again.id, &again.token), (made.id, &made.token));
    assert_eq!(again.expires, Some(f.now().plus_micros(90 * MICROS_PER_DAY)), "90 days unless asked");
}

#[test]
fn who_may_make_list_and_revoke_whose_tokens() {
    let f = store();
    let admin = f.engine.session("admin").unwrap();
    let alice = f.engine.session("alice").unwrap();
    let bob = f.engine.session("bob").unwrap();
    let for_bob = admin.create_token("bob", None, None).unwrap();
    let own = alice.create_token("alice", Some("laptop"), Some(1)).unwrap();
    let admins = admin.create_token("admin", None, None).unwrap();
    // Alice may not make one for bob, nor for a user who does not exist
    // (and is not told whether it does); nothing is written.
    let before = f.engine.next_seq();
    for user in ["bob", "nobody", "admin"] {
        let r = alice.create_token(user, None, None);
        assert!(matches!(r, Err(Error::Domain(DomainError::Denied { .. }))), "{user}: {r:?}");
    }
    assert_eq!(f.engine.next_seq(), before);
    // Listing: everything for the administrator, one's own otherwise.
    let ids = |s: &joblog::Session| s.tokens().unwrap().iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(ids(&admin), vec![for_bob.id, own.id, admins.id]);
    assert_eq!(ids(&alice), vec![own.id]);
    assert_eq!(ids(&bob), vec![for_bob.id]);
    let listed = &alice.tokens().unwrap()[0];
    assert_eq!(
        (listed.user.as_str(), listed.name.as_deref(), listed.created, listed.expires, listed.revoked),
        ("alice", Some("laptop"), f.now(), own.expires, false)
    );
    // Revoking: bob's token is "not found" to alice; she revokes her own;
    // the administrator revokes bob's.
    let before = f.engine.next_seq();
    let r = alice.revoke_token(for_bob.id);
    assert!(matches!(r, Err(Error::Domain(DomainError::NotFound { kind: "token", .. }))), "{r:?}");
    let r = alice.revoke_token(Uuid::from_u128(42));
    assert!(matches!(r, Err(Error::Domain(DomainError::NotFound { kind: "token", .. }))), "{r:?}");
    assert_eq!(f.engine.next_seq(), before);
    assert_eq!(f.engine.authenticate(&for_bob.token).unwrap(), "bob");
    alice.revoke_token(own.id).unwrap();
    admin.revoke_token(for_bob.id).unwrap();
    assert!(unauthenticated(f.engine.authenticate(&own.token)));
    assert!(unauthenticated(f.engine.authenticate(&for_bob.token)));
    assert!(bob.tokens().unwrap()[0].revoked, "revoked tokens stay listed");
    // A second revocation changes nothing and says so.
    let before = f.engine.next_seq();
    assert!(matches!(admin.revoke_token(for_bob.id), Err(Error::Domain(DomainError::Invalid { .. }))));
    assert_eq!(f.engine.next_seq(), before);
    assert_eq!(f.engine.authenticate(&admins.token).unwrap(), "admin");
}

#[test]
fn expired_tokens_and_deactivated_users_do_not_authenticate() {
    let f = store();
    let admin = f.engine.session("admin").unwrap();
    let day = admin.create_token("alice", None, Some(1)).unwrap();
    let long = admin.create_token("alice", None, Some(3650)).unwrap();
    f.clock.advance_secs(86_400 - 1);
    assert_eq!(f.engine.authenticate(&day.token).unwrap(), "alice");
    f.clock.advance_secs(1);
    assert!(unauthenticated(f.engine.authenticate(&day.token)), "a token expires at its expiry");
    assert_eq!(f.engine.authenticate(&long.token).unwrap(), "alice");
    admin.deactivate_user("alice").unwrap();
    assert!(unauthenticated(f.engine.authenticate(&long.token)));
    // No new token for a deactivated user either.
    let r = admin.create_token("alice", None, None);
    assert!(matches!(r, Err(Error::Domain(DomainError::UserDeactivated { .. }))), "{r:?}");
    // Reactivated, the user's tokens that are still live work again.
    admin.reactivate_user("alice").unwrap();
    assert_eq!(f.engine.authenticate(&long.token).unwrap(), "alice");
}

#[test]
fn bad_requests_are_refused_and_write_nothing() {
    let f = store();
    let admin = f.engine.session("admin").unwrap();
    let before = f.engine.next_seq();
    for days in [0, 3651, u32::MAX] {
        let r = admin.create_token("alice", None, Some(days));
        assert!(matches!(r, Err(Error::Domain(DomainError::Invalid { what: "token expiry", .. }))), "{days}: {r:?}");
    }
    let r = admin.create_token("alice", Some(""), None);
    assert!(matches!(r, Err(Error::Domain(DomainError::Invalid { .. }))), "{r:?}");
    let r = admin.create_token("alice", Some("a\nb"), None);
    assert!(matches!(r, Err(Error::Domain(DomainError::ControlCharacter { .. }))), "{r:?}");
    let r = admin.create_token("alice", Some(&"x".repeat(257)), None);
    assert!(matches!(r, Err(Error::Domain(DomainError::TooLong { .. }))), "{r:?}");
    let r = admin.create_token("nobody", None, None);
    assert!(matches!(r, Err(Error::Domain(DomainError::NotFound { kind: "user", .. }))), "{r:?}");
    assert_eq!(f.engine.next_seq(), before);
    admin.create_token("alice", Some(&"x".repeat(256)), Some(3650)).unwrap();
}

#[test]
fn a_user_holds_at_most_a_hundred_live_tokens() {
    let f = store();
    let alice = f.engine.session("alice").unwrap();
    let made: Vec<NewToken> = (0..100).map(|_| alice.create_token("alice", None, Some(1)).unwrap()).collect();
    let r = alice.create_token("alice", None, None);
    assert!(matches!(r, Err(Error::Domain(DomainError::Invalid { what: "token", .. }))), "{r:?}");
    // A revoked token frees its place, and so does an expired one.
    alice.revoke_token(made[0].id).unwrap();
    alice.create_token("alice", None, Some(2)).unwrap();
    assert!(alice.create_token("alice", None, None).is_err());
    f.clock.advance_secs(86_400);
    alice.create_token("alice", None, None).unwrap();
}

#[test]
fn tokens_survive_reopening_replay_and_checkpoints_and_only_their_hash_is_stored() {
    let f = store();
    let admin = f.engine.session("admin").unwrap();
    let kept = admin.create_token("alice", Some("kept"), None).unwrap();
    let gone = admin.create_token("bob", None, None).unwrap();
    admin.revoke_token(gone.id).unwrap();
    drop(admin);
    let listed = f.engine.session("admin").unwrap().tokens().unwrap();
    // From the log alone (no checkpoint), then from a checkpoint.
    let f = f.reopen();
    assert_eq!(f.engine.open_report().checkpoint_seq, None);
    assert_eq!(f.engine.session("admin").unwrap().tokens().unwrap(), listed);
    assert!(f.engine.verify().ok(), "{:?}", f.engine.verify().problems);
    let f = f.close_and_reopen();
    assert!(f.engine.open_report().checkpoint_seq.is_some());
    assert_eq!(f.engine.session("admin").unwrap().tokens().unwrap(), listed);
    assert_eq!(f.engine.authenticate(&kept.token).unwrap(), "alice");
    assert!(unauthenticated(f.engine.authenticate(&gone.token)));
    // The replay of the audit view knows them too: before the revocation,
    // bob's token was live.
    let replayed = f.engine.replay_until_seq(f.engine.next_seq() - 2).unwrap();
    assert!(replayed.tokens().get(gone.id).is_some_and(|t| !t.revoked));
    drop(replayed);
    // No file of the store holds a secret (nor its hex digits alone).
    for (path, _, _) in support::tree(f.path()) {
        let bytes = std::fs::read(&path).unwrap();
        for secret in [&kept.token, &gone.token] {
            for needle in [secret.as_bytes(), &secret.as_bytes()[3..]] {
                assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{} holds a token", path.display());
            }
        }
    }
}
