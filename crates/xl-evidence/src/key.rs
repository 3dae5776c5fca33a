//! The hub's Ed25519 signing key and public keys.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::EvidenceError;

/// Where the key lives under the hub's data directory.
pub const KEY_FILE: &str = "keys/evidence.ed25519";

/// The first line of a key file: what it is and the version of its layout.
const KEY_FILE_HEADER: &str = "xueliang evidence signing key v1 ed25519";

/// An Ed25519 public key: the hub's, as the console and the API show it, or one a person
/// trusts when verifying a package.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// A public key from its standard base64 (32 bytes, 44 characters).
    pub fn from_base64(text: &str) -> Result<PublicKey, EvidenceError> {
        let bytes = BASE64
            .decode(text.trim())
            .map_err(|e| EvidenceError::BadPublicKey {
                reason: format!("not base64: {e}"),
            })?;
        let bytes: [u8; 32] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| EvidenceError::BadPublicKey {
                    reason: format!("{} bytes, an Ed25519 public key has 32", bytes.len()),
                })?;
        VerifyingKey::from_bytes(&bytes)
            .map(PublicKey)
            .map_err(|_| EvidenceError::BadPublicKey {
                reason: "the bytes are not a point of the curve".into(),
            })
    }

    /// The key in standard base64.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0.as_bytes())
    }

    /// A short name of the key: the first 16 hex digits of the SHA-256 of its 32 bytes.
    pub fn key_id(&self) -> String {
        let digest = Sha256::digest(self.0.as_bytes());
        crate::hex(&digest[..8])
    }

    /// Whether `signature` is this key's signature of `message` (strict: no malleable or
    /// small-order forms).
    pub(crate) fn verifies(&self, message: &[u8], signature: &Signature) -> bool {
        self.0.verify_strict(message, signature).is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.key_id())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// The hub's signing key, kept in `<data_dir>/keys/evidence.ed25519` (mode 0600). Its
/// `Debug` shows the key id and the file, never the secret.
pub struct HubKey {
    signing: SigningKey,
    public: PublicKey,
    path: PathBuf,
}

impl fmt::Debug for HubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubKey")
            .field("key_id", &self.key_id())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl HubKey {
    /// The key of the hub whose data directory is `data_dir`, made at first use.
    ///
    /// A new key is written atomically (a temporary file in `keys/`, fsynced, renamed, the
    /// folder fsynced), so a crash leaves either no key or a whole one. A key file that does
    /// not parse, or whose public key is not its secret's, is [`EvidenceError::CorruptKey`]
    /// naming the file: never replaced.
    pub fn load_or_create(data_dir: &Path) -> Result<HubKey, EvidenceError> {
        let path = data_dir.join(KEY_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key = HubKey::parse(&path, &bytes)?;
                if let Ok(meta) = std::fs::metadata(&path)
                    && meta.permissions().mode() & 0o077 != 0
                {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                        "the evidence signing key can be read by other users than the hub's; \
                         chmod 600 it"
                    );
                }
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HubKey::create(path),
            Err(source) => Err(EvidenceError::Io {
                op: "reading",
                path,
                source,
            }),
        }
    }

    /// The public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public key in standard base64, as the console and the API show it.
    pub fn public_key_base64(&self) -> String {
        self.public.to_base64()
    }

    /// The first 16 hex digits of the SHA-256 of the public key.
    pub fn key_id(&self) -> String {
        self.public.key_id()
    }

    /// The key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Signature {
        self.signing.sign(message)
    }

    fn create(path: PathBuf) -> Result<HubKey, EvidenceError> {
        let io = |op, path: &Path| {
            let path = path.to_owned();
            move |source| EvidenceError::Io { op, path, source }
        };
        let dir = path
            .parent()
            .expect("the key path has a parent: it is joined under the data directory");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating", dir))?;
        let mut seed = [0u8; 32];
        rand::TryRngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut seed).map_err(|e| {
            EvidenceError::Io {
                op: "drawing a new key from the system's random source for",
                path: path.clone(),
                source: std::io::Error::other(e),
            }
        })?;
        let key = HubKey::from_seed(path.clone(), seed);
        let text = format!(
            "{KEY_FILE_HEADER}\nsecret {}\npublic {}\n",
            BASE64.encode(seed),
            key.public.to_base64()
        );
        let tmp = dir.join(format!(".evidence.ed25519.tmp-{}", std::process::id()));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(io("creating", &tmp))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io("writing", &tmp))?;
            std::fs::rename(&tmp, &path).map_err(io("renaming to", &path))
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing", dir))?;
        tracing::info!(
            key_id = %key.key_id(),
            path = %path.display(),
            "evidence signing key created"
        );
        Ok(key)
    }

    fn from_seed(path: PathBuf, seed: [u8; 32]) -> HubKey {
        let signing = SigningKey::from_bytes(&seed);
        let public = PublicKey(signing.verifying_key());
        HubKey {
            signing,
            public,
            path,
        }
    }

    fn parse(path: &Path, bytes: &[u8]) -> Result<HubKey, EvidenceError> {
        let corrupt = |reason: String| EvidenceError::CorruptKey {
            path: path.to_owned(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| corrupt("not UTF-8 text".into()))?;
        let mut lines = text.lines();
        if lines.next() != Some(KEY_FILE_HEADER) {
            return Err(corrupt(format!(
                "the first line is not {KEY_FILE_HEADER:?}"
            )));
        }
        let mut field = |name: &str| -> Result<[u8; 32], EvidenceError> {
            let value = lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or_else(|| corrupt(format!("no {name:?} line where expected")))?;
            let decoded = BASE64
                .decode(value)
                .map_err(|e| corrupt(format!("the {name} is not base64: {e}")))?;
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| corrupt(format!("the {name} is {} bytes, not 32", decoded.len())))
        };
        let seed = field("secret")?;
        let public = field("public")?;
        if lines.next().is_some() || !text.ends_with('\n') {
            return Err(corrupt("it does not end after the public key".into()));
        }
        let key = HubKey::from_seed(path.to_owned(), seed);
        if key.public.0.as_bytes() != &public {
            return Err(corrupt(
                "the public key is not the secret key's: one of them was altered".into(),
            ));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "xl-evidence-key-{what}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_key_is_made_once_with_mode_0600_and_loaded_after() {
        let dir = scratch("made");
        let made = HubKey::load_or_create(&dir).unwrap();
        let path = dir.join(KEY_FILE);
        assert_eq!(made.path(), path);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        let keys_dir = std::fs::metadata(dir.join("keys")).unwrap();
        assert_eq!(keys_dir.permissions().mode() & 0o777, 0o700);
        // No temporary file is left beside it.
        let names: Vec<_> = std::fs::read_dir(dir.join("keys"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["evidence.ed25519"]);

        let loaded = HubKey::load_or_create(&dir).unwrap();
        assert_eq!(loaded.public_key(), made.public_key());
        let message = b"manifest";
        assert!(made.public_key().verifies(message, &loaded.sign(message)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_key_id_is_the_start_of_the_public_keys_sha256() {
        let dir = scratch("id");
        let key = HubKey::load_or_create(&dir).unwrap();
        let public = BASE64.decode(key.public_key_base64()).unwrap();
        let full = crate::hex(&Sha256::digest(&public));
        assert_eq!(key.key_id(), full[..16]);
        assert_eq!(key.key_id().len(), 16);
        let back = PublicKey::from_base64(&key.public_key_base64()).unwrap();
        assert_eq!(&back, key.public_key());
        assert!(!format!("{key:?}").contains(&BASE64.encode(key.signing.to_bytes())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_corrupt_key_file_is_an_error_naming_it_and_is_left_alone() {
        let dir = scratch("corrupt");
        HubKey::load_or_create(&dir).unwrap();
        let path = dir.join(KEY_FILE);
        let good = std::fs::read_to_string(&path).unwrap();
        // One character of the secret changed (still base64), the secret made longer, the file
        // emptied, the header changed, a line added, the last newline cut.
        let secret_at = good.find("secret ").unwrap() + "secret ".len();
        let mut altered = good.clone().into_bytes();
        altered[secret_at] = if altered[secret_at] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let cases: Vec<Vec<u8>> = vec![
            altered,
            good.replacen("secret ", "secret AAAA", 1).into_bytes(),
            Vec::new(),
            good.replacen("v1", "v2", 1).into_bytes(),
            format!("{good}extra\n").into_bytes(),
            good.trim_end().as_bytes().to_vec(),
        ];
        for bytes in cases {
            std::fs::write(&path, &bytes).unwrap();
            let e = HubKey::load_or_create(&dir).unwrap_err();
            assert!(
                matches!(e, EvidenceError::CorruptKey { .. }),
                "{e} for {:?}",
                String::from_utf8_lossy(&bytes)
            );
            assert!(e.to_string().contains(&path.display().to_string()), "{e}");
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "the file was replaced"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn public_keys_that_are_not_are_refused() {
        for text in ["", "not base64!", "AAAA", &BASE64.encode([7u8; 33])] {
            let e = PublicKey::from_base64(text).unwrap_err();
            assert!(
                matches!(e, EvidenceError::BadPublicKey { .. }),
                "{text:?}: {e}"
            );
        }
    }
}
