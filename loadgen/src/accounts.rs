//! The accounts file written by `hotline user provision`: one `USER_ID USERNAME TOKEN_HEX`
//! line per account, the token being 32 bytes in lowercase hex. The load generator only
//! reads it; line `i` is connection `i`.

use std::path::Path;

use anyhow::{bail, Context};
use hotline_wire::TOKEN_BYTES;

/// One account: a user with one device, logged in by token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    pub user_id: u64,
    pub token: [u8; TOKEN_BYTES],
}

/// Parses one line; `None` if it is not `USER_ID USERNAME TOKEN_HEX`.
pub(crate) fn parse_line(line: &str) -> Option<Account> {
    let mut parts = line.split_whitespace();
    let user_id = parts.next()?.parse().ok()?;
    let _username = parts.next()?;
    let hex = parts.next()?;
    if hex.len() != 2 * TOKEN_BYTES || parts.next().is_some() {
        return None;
    }
    let mut token = [0u8; TOKEN_BYTES];
    for (i, byte) in token.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Account { user_id, token })
}

/// Reads accounts `first .. first + count` of `path` (line numbers, 0-based).
pub(crate) fn load(path: &Path, first: usize, count: usize) -> anyhow::Result<Vec<Account>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the accounts file {} (make it with `hotline user provision`)",
            path.display()
        )
    })?;
    let mut accounts = Vec::with_capacity(count);
    for (n, line) in text.lines().enumerate().skip(first).take(count) {
        match parse_line(line) {
            Some(a) => accounts.push(a),
            None => bail!(
                "{}:{}: not a `USER_ID USERNAME TOKEN_HEX` line: {line:?}",
                path.display(),
                n + 1
            ),
        }
    }
    if accounts.len() < count {
        bail!(
            "{} holds {} accounts from line {}, {count} are needed: provision more with `hotline user provision --count N`",
            path.display(),
            accounts.len(),
            first + 1
        );
    }
    Ok(accounts)
}

/// How many account lines `path` holds.
pub(crate) fn count(path: &Path) -> anyhow::Result<usize> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read the accounts file {} (make it with `hotline user provision`)",
            path.display()
        )
    })?;
    Ok(text.lines().filter(|l| !l.trim().is_empty()).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_provisioned_line_parses_and_junk_does_not() {
        let hex = "0f".repeat(32);
        let a = parse_line(&format!("17 lg3 {hex}")).expect("parses");
        assert_eq!(a.user_id, 17);
        assert_eq!(a.token, [0x0f; 32]);
        assert!(parse_line("17 lg3 0f0f").is_none());
        assert!(parse_line(&format!("x lg3 {hex}")).is_none());
        assert!(parse_line(&format!("17 lg3 {hex} extra")).is_none());
    }
}
