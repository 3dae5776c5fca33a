//! How a node proves itself to NATS: [`NatsAuth`] (shared with JetStream out, in xl-core)
//! checked and turned into async-nats options. URLs with credentials are refused elsewhere
//! (`check_url`): async-nats would not send them.

pub use xl_core::nats::NatsAuth;

use crate::ClusterError;

/// Checks that nothing is empty.
pub(crate) fn validate(auth: &NatsAuth) -> Result<(), ClusterError> {
    match auth.problem() {
        Some(p) => Err(ClusterError::BadConfig(format!("NATS auth: {p}"))),
        None => Ok(()),
    }
}

/// `options` with `auth`'s credentials; a credentials file is read (and parsed) now. Its
/// error names the file and what is wrong with it, never its contents.
pub(crate) async fn apply(
    auth: &NatsAuth,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::ConnectOptions, ClusterError> {
    Ok(match auth {
        NatsAuth::None => options,
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.clone())
        }
        NatsAuth::Token(token) => options.token(token.clone()),
        NatsAuth::CredentialsFile(path) => options.credentials_file(path).await.map_err(|e| {
            ClusterError::BadConfig(format!("NATS credentials file {}: {e}", path.display()))
        })?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_secrets_are_refused() {
        for auth in [
            NatsAuth::UserPassword {
                user: "".into(),
                password: "x".into(),
            },
            NatsAuth::Token("".into()),
            NatsAuth::CredentialsFile("".into()),
        ] {
            let err = validate(&auth).unwrap_err();
            assert_eq!(err.kind(), xl_core::ErrorKind::InvalidInput, "{err}");
        }
        validate(&NatsAuth::None).unwrap();
    }
}
