//! Credentials: argon2id password hashing, session tokens and name rules. Everything slow
//! here runs on the helper pool, never on a core thread.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use sha2::{Digest, Sha256};

/// Bytes in a session token.
pub(crate) const TOKEN_BYTES: usize = hotline_wire::TOKEN_BYTES;

/// Hashes a password into an argon2id PHC string (argon2's default parameters: 19 MiB,
/// 2 passes, 1 lane, which OWASP recommends).
pub(crate) fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    #[cfg(feature = "fuzzing")]
    if let Some(phc) = fuzzing_memo::hashed(password) {
        return Ok(phc);
    }
    let phc = hasher().hash_password(password.as_bytes(), &salt())?.to_string();
    #[cfg(feature = "fuzzing")]
    fuzzing_memo::remember_hash(password, &phc);
    Ok(phc)
}

#[cfg(not(feature = "fuzzing"))]
fn salt() -> SaltString {
    SaltString::generate(&mut argon2::password_hash::rand_core::OsRng)
}

/// Under the `fuzzing` feature: one fixed salt, so a password always hashes the same and
/// an input replays the same way (with [`fuzzing_memo`], a repeated hash costs nothing).
#[cfg(feature = "fuzzing")]
fn salt() -> SaltString {
    SaltString::encode_b64(b"hotline-fuzzing").expect("a salt of valid length")
}

/// The argon2 instance new hashes are made with (verification takes its parameters from
/// the stored hash).
#[cfg(not(feature = "fuzzing"))]
fn hasher() -> Argon2<'static> {
    Argon2::default()
}

/// Under the `fuzzing` feature: argon2's smallest parameters (8 KiB, 1 pass), so that a
/// fuzzed Register or Login costs microseconds instead of tens of milliseconds.
#[cfg(feature = "fuzzing")]
fn hasher() -> Argon2<'static> {
    let params = argon2::Params::new(argon2::Params::MIN_M_COST, 1, 1, None).expect("argon2's minimum parameters");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

/// A well-formed PHC string that matches no password, verified when the user does not
/// exist so a login costs the same either way (no user enumeration by timing).
const DUMMY_PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$G6k0rjx5VsjB5LIa2BcCFSFuEt3VB1ym4zDvMKm+Sds";

#[cfg(not(feature = "fuzzing"))]
fn dummy_phc() -> &'static str {
    DUMMY_PHC
}

/// Under the `fuzzing` feature the dummy costs what the (cheap) real hashes cost.
#[cfg(feature = "fuzzing")]
fn dummy_phc() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| hash_password("dummy").unwrap_or_else(|_| DUMMY_PHC.to_owned()))
}

/// Whether `password` matches the stored PHC string (`None`: the user does not exist).
pub(crate) fn verify_password(password: &str, phc: Option<&str>) -> bool {
    // Token-only accounts (provisioned for load generation) store no password hash, and a
    // disabled account's is refused: both still pay for one hash, so timing tells nothing.
    let stored = match phc {
        Some("") | None => dummy_phc(),
        Some(p) if p.starts_with(DISABLED_PREFIX) => dummy_phc(),
        Some(p) => p,
    };
    let Ok(parsed) = PasswordHash::new(stored) else {
        tracing::warn!("a stored password hash does not parse; refusing the login");
        return false;
    };
    #[cfg(feature = "fuzzing")]
    let ok = fuzzing_memo::verified(password, stored).unwrap_or_else(|| {
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        fuzzing_memo::remember_verified(password, stored, ok);
        ok
    });
    #[cfg(not(feature = "fuzzing"))]
    let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    ok && phc.is_some_and(|p| !p.is_empty() && !p.starts_with(DISABLED_PREFIX))
}

/// Under the `fuzzing` feature: each distinct hash and verification is computed once per
/// process. Fuzz inputs use a handful of passwords, and with the fixed salt every account
/// with the same password stores the same hash, so a fuzzed Register or Login costs a
/// lookup instead of an argon2 run (even at the smallest parameters an instrumented run
/// takes about 150 µs, most of a login's cost). Bounded: past `MEMO_ENTRIES_MAX` entries
/// results are computed and not kept.
#[cfg(feature = "fuzzing")]
mod fuzzing_memo {
    use std::sync::Mutex;

    /// Entries each memo holds at most.
    pub(super) const MEMO_ENTRIES_MAX: usize = 64;

    /// (password, PHC string) pairs hashed so far.
    static HASHES: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
    /// (password, PHC string, whether it matched) verifications so far.
    static VERIFIED: Mutex<Vec<(String, String, bool)>> = Mutex::new(Vec::new());

    pub(super) fn hashed(password: &str) -> Option<String> {
        let hashes = HASHES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        hashes.iter().find(|(p, _)| p == password).map(|(_, phc)| phc.clone())
    }

    pub(super) fn remember_hash(password: &str, phc: &str) {
        let mut hashes = HASHES.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if hashes.len() < MEMO_ENTRIES_MAX {
            hashes.push((password.to_owned(), phc.to_owned()));
        }
    }

    pub(super) fn verified(password: &str, phc: &str) -> Option<bool> {
        let verified = VERIFIED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        verified
            .iter()
            .find(|(p, h, _)| p == password && h == phc)
            .map(|&(_, _, ok)| ok)
    }

    pub(super) fn remember_verified(password: &str, phc: &str, ok: bool) {
        let mut verified = VERIFIED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if verified.len() < MEMO_ENTRIES_MAX {
            verified.push((password.to_owned(), phc.to_owned(), ok));
        }
    }
}

/// Prefix of the stored credential of an account an admin disabled; the hash after it is
/// kept, so enabling the account restores the same password.
pub(crate) const DISABLED_PREFIX: &str = "!disabled!";

/// A new random session token.
pub(crate) fn new_token() -> Result<[u8; TOKEN_BYTES], getrandom::Error> {
    let mut t = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut t)?;
    Ok(t)
}

/// What the database stores for a token: tokens are 256 random bits, so a fast hash is
/// enough (no dictionary to attack), and a stolen database yields no usable token.
pub(crate) fn token_hash(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// Why a username is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum NameError {
    #[error("username must be 1 to {max} bytes, got {len}")]
    Length { len: usize, max: u32 },
    #[error("username may contain only ASCII letters, digits, '_', '.' and '-'")]
    Characters,
}

/// Checks a username: 1..=`max` bytes of `[A-Za-z0-9_.-]`.
pub(crate) fn check_username(name: &str, max: u32) -> Result<(), NameError> {
    if name.is_empty() || name.len() > max as usize {
        return Err(NameError::Length { len: name.len(), max });
    }
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b)) {
        return Err(NameError::Characters);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_and_the_dummy_never_does() {
        let phc = hash_password("hunter2").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("hunter2", Some(&phc)));
        assert!(!verify_password("hunter3", Some(&phc)));
        assert!(!verify_password("anything", None));
        assert!(!verify_password("x", Some("not a phc string")));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_ne!(a, b);
        assert_ne!(token_hash(&a), token_hash(&b));
        assert_eq!(token_hash(&a), token_hash(&a));
    }

    #[test]
    fn usernames_are_checked() {
        assert!(check_username("alice_01.x-y", 64).is_ok());
        assert_eq!(check_username("", 64), Err(NameError::Length { len: 0, max: 64 }));
        assert_eq!(check_username("abcde", 4), Err(NameError::Length { len: 5, max: 4 }));
        assert_eq!(check_username("al ice", 64), Err(NameError::Characters));
        assert_eq!(check_username("élan", 64), Err(NameError::Characters));
    }
}
