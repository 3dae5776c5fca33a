//! The credentials a hub sends to NATS (the cluster's leases and JetStream out share them),
//! and how a name becomes one token of a NATS subject (every stream named by community and
//! kind uses it). Only the data: each crate that connects turns it into its client's options.
//!
//! async-nats 0.51 sends only what its connect options carry: a `user:password@` in a server
//! URL is parsed but never sent, so credentials are their own setting.

use std::fmt;
use std::path::PathBuf;

/// The credentials sent to the NATS server. Secrets never appear in `Debug` output, logs or
/// errors: they show the kind of credentials (and the user name or file path) only.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum NatsAuth {
    /// None: the server must allow clients without credentials. The default.
    #[default]
    None,
    /// A user and password (`authorization { user: .., password: .. }` on the server, or
    /// `nats-server --user .. --pass ..`).
    UserPassword { user: String, password: String },
    /// A token (`authorization { token: .. }`, `nats-server --auth ..`).
    Token(String),
    /// A `.creds` file (a user JWT and its NKey seed, NATS decentralized auth), read when
    /// connecting.
    CredentialsFile(PathBuf),
}

impl fmt::Debug for NatsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsAuth::None => f.write_str("None"),
            NatsAuth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            NatsAuth::Token(_) => f.debug_tuple("Token").field(&"<redacted>").finish(),
            NatsAuth::CredentialsFile(path) => {
                f.debug_tuple("CredentialsFile").field(path).finish()
            }
        }
    }
}

impl fmt::Display for NatsAuth {
    /// What was sent, for errors: `no credentials`, `user "hub"`, `a token`,
    /// `credentials file /etc/xl/hub.creds`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NatsAuth::None => f.write_str("no credentials"),
            NatsAuth::UserPassword { user, .. } => write!(f, "user {user:?}"),
            NatsAuth::Token(_) => f.write_str("a token"),
            NatsAuth::CredentialsFile(path) => write!(f, "credentials file {}", path.display()),
        }
    }
}

impl NatsAuth {
    /// Why it cannot be used (an empty part), if it cannot.
    pub fn problem(&self) -> Option<&'static str> {
        match self {
            NatsAuth::UserPassword { user, .. } if user.is_empty() => Some("the user is empty"),
            NatsAuth::UserPassword { password, .. } if password.is_empty() => {
                Some("the password is empty")
            }
            NatsAuth::Token(t) if t.is_empty() => Some("the token is empty"),
            NatsAuth::CredentialsFile(p) if p.as_os_str().is_empty() => {
                Some("the credentials file path is empty")
            }
            _ => None,
        }
    }
}

/// `s` as one NATS subject token: `.`, wildcards, whitespace and anything else outside
/// `A-Z a-z 0-9 _ -` become `_`; empty becomes `_` (`gate.forced_open` -> `gate_forced_open`).
pub fn subject_token(s: &str) -> String {
    if s.is_empty() {
        return "_".into();
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_in_debug_and_display() {
        let cases = [
            NatsAuth::UserPassword {
                user: "hub".into(),
                password: "hunter2".into(),
            },
            NatsAuth::Token("hunter2".into()),
        ];
        for auth in cases {
            let shown = format!("{auth:?} {auth}");
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        let auth = NatsAuth::UserPassword {
            user: "hub".into(),
            password: "x".into(),
        };
        assert_eq!(auth.to_string(), "user \"hub\"");
        assert!(format!("{auth:?}").contains("hub"));
    }

    #[test]
    fn empty_parts_are_problems() {
        for auth in [
            NatsAuth::UserPassword {
                user: "".into(),
                password: "x".into(),
            },
            NatsAuth::UserPassword {
                user: "hub".into(),
                password: "".into(),
            },
            NatsAuth::Token("".into()),
            NatsAuth::CredentialsFile("".into()),
        ] {
            assert!(auth.problem().is_some(), "{auth:?}");
        }
        assert_eq!(NatsAuth::None.problem(), None);
    }
}
