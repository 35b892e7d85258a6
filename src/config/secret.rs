//! Secrets in configuration files: a password or token is never written in the file itself but
//! named there, `{ env = "NAME" }` or `{ file = "/run/secrets/name" }`, and read once while the
//! configuration is loaded. The value is kept in a [`Secret`], whose `Debug` shows nothing of it.

use std::path::PathBuf;

use serde::Deserialize;

use crate::check::Invalid;

/// A secret value read from the environment or a file. `Debug` prints `Secret(***)`; the value
/// is reached only through [`Secret::expose`], where it is handed to a client.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where a secret is read from, as written in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    /// An environment variable holding the value.
    pub env: Option<String>,
    /// A file holding the value (one trailing newline is dropped), e.g. a mounted secret.
    pub file: Option<PathBuf>,
}

impl<'de> Deserialize<'de> for SecretRef {
    /// Anything but `{ env = .. }` or `{ file = .. }` is refused with a message that does not
    /// repeat what was written (serde's own would quote a password written in clear).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Named {
            #[serde(default)]
            env: Option<String>,
            #[serde(default)]
            file: Option<PathBuf>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            Named(Named),
            Other(serde::de::IgnoredAny),
        }
        match Written::deserialize(d)? {
            Written::Named(n) => Ok(SecretRef {
                env: n.env,
                file: n.file,
            }),
            Written::Other(_) => Err(serde::de::Error::custom(format!(
                "a secret is not written in the file: name where to read it, {FORM}"
            ))),
        }
    }
}

/// The form expected of a secret, for error messages.
pub const FORM: &str = "{ env = \"NAME\" } or { file = \"/path\" }";

impl SecretRef {
    /// Reads the value; `env` is the process environment (tests pass their own). Errors say
    /// which variable or file and why, never the value.
    pub fn resolve(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<Secret, Invalid> {
        match (&self.env, &self.file) {
            (Some(name), None) => match env(name) {
                Some(v) if !v.is_empty() => Ok(Secret(v)),
                Some(_) => Err(Invalid(format!("environment variable `{name}` is empty"))),
                None => Err(Invalid(format!("environment variable `{name}` is not set"))),
            },
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Invalid(format!("cannot read secret file {}: {e}", path.display()))
                })?;
                let v = text
                    .strip_suffix('\n')
                    .map(|t| t.strip_suffix('\r').unwrap_or(t))
                    .unwrap_or(&text);
                if v.is_empty() {
                    return Err(Invalid(format!("secret file {} is empty", path.display())));
                }
                Ok(Secret(v.to_string()))
            }
            _ => Err(Invalid(format!(
                "expected exactly one of `env` and `file`: {FORM}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_written_in_clear_is_refused_without_repeating_it() {
        #[derive(Debug, Deserialize)]
        struct T {
            #[allow(dead_code)]
            password: SecretRef,
        }
        // (toml's Display quotes the source line; deadair reports `message()` with the line)
        let e = toml::from_str::<T>("password = \"hunter2\"")
            .unwrap_err()
            .message()
            .to_string();
        assert!(e.contains("a secret is not written in the file"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        let t: T = toml::from_str("password = { env = \"PW\" }").unwrap();
        assert_eq!(t.password.env.as_deref(), Some("PW"));
    }

    #[test]
    fn reads_env_and_file_and_never_shows_the_value() {
        let env = |k: &str| (k == "PW").then(|| "hunter2".to_string());
        let r = SecretRef {
            env: Some("PW".into()),
            file: None,
        };
        let s = r.resolve(&env).unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        let missing = SecretRef {
            env: Some("NOPE".into()),
            file: None,
        };
        assert_eq!(
            missing.resolve(&env).unwrap_err().0,
            "environment variable `NOPE` is not set"
        );

        let dir = std::env::temp_dir().join(format!("deadair-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let r = SecretRef {
            env: None,
            file: Some(f.clone()),
        };
        assert_eq!(r.resolve(&env).unwrap().expose(), "s3cret");
        let gone = SecretRef {
            env: None,
            file: Some(dir.join("missing")),
        };
        let e = gone.resolve(&env).unwrap_err().0;
        assert!(
            e.starts_with("cannot read secret file") && e.contains("missing"),
            "{e}"
        );
        let both = SecretRef {
            env: Some("PW".into()),
            file: Some(f),
        };
        assert!(both.resolve(&env).unwrap_err().0.contains("exactly one"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
