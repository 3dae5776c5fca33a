//! How a node proves itself to NATS.
//!
//! async-nats 0.51 sends only what [`async_nats::ConnectOptions`] carries: a `user:password@`
//! in a server URL is parsed but never sent (its connector builds the CONNECT message from the
//! options alone), so credentials are their own setting here and URLs with them are refused.

use std::fmt;
use std::path::PathBuf;

use crate::ClusterError;

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
    /// Checks that nothing is empty.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let bad = |m: &str| Err(ClusterError::BadConfig(format!("NATS auth: {m}")));
        match self {
            NatsAuth::None => Ok(()),
            NatsAuth::UserPassword { user, .. } if user.is_empty() => bad("the user is empty"),
            NatsAuth::UserPassword { password, .. } if password.is_empty() => {
                bad("the password is empty")
            }
            NatsAuth::Token(token) if token.is_empty() => bad("the token is empty"),
            NatsAuth::CredentialsFile(path) if path.as_os_str().is_empty() => {
                bad("the credentials file path is empty")
            }
            _ => Ok(()),
        }
    }

    /// `options` with these credentials; a credentials file is read (and parsed) now. Its
    /// error names the file and what is wrong with it, never its contents.
    pub async fn apply(
        &self,
        options: async_nats::ConnectOptions,
    ) -> Result<async_nats::ConnectOptions, ClusterError> {
        Ok(match self {
            NatsAuth::None => options,
            NatsAuth::UserPassword { user, password } => {
                options.user_and_password(user.clone(), password.clone())
            }
            NatsAuth::Token(token) => options.token(token.clone()),
            NatsAuth::CredentialsFile(path) => {
                options.credentials_file(path).await.map_err(|e| {
                    ClusterError::BadConfig(format!(
                        "NATS credentials file {}: {e}",
                        path.display()
                    ))
                })?
            }
        })
    }
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
    fn empty_secrets_are_refused() {
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
            let err = auth.validate().unwrap_err();
            assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput, "{err}");
        }
        NatsAuth::None.validate().unwrap();
    }
}
