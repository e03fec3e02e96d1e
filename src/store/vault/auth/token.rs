//! A fixed token: `VAULT_TOKEN` / `BAO_TOKEN`, or `~/.vault-token`.

use super::{AuthMethod, Issued};
use crate::env::Environment;
use crate::error::{Error, Result};
use crate::secret::{read_config_file, secret_string, ReadError};
use crate::store::vault::client::{Client, Deadline};
use crate::store::vault::config::{parse_token, twin};
use secrecy::{ExposeSecret, SecretString};

pub(crate) struct StaticToken {
    token: SecretString,
    source: &'static str,
}

impl StaticToken {
    /// `VAULT_TOKEN` or `BAO_TOKEN`, when set.
    pub(crate) fn from_variables(env: &dyn Environment) -> Result<Option<StaticToken>> {
        Ok(match twin(env, "VAULT_TOKEN", "BAO_TOKEN")? {
            Some((token, var)) => Some(StaticToken {
                token: parse_token(&token, var)?,
                source: var,
            }),
            None => None,
        })
    }

    /// `$HOME/.vault-token`, when it exists and is not empty.
    pub(crate) fn from_token_file(env: &dyn Environment) -> Result<Option<StaticToken>> {
        let Some(home) = env.path("HOME") else {
            return Ok(None);
        };
        let path = home.join(".vault-token");
        let bytes = match read_config_file(&path) {
            Ok(b) => b,
            Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(ReadError::TooLarge) => {
                return Err(Error::Usage(format!(
                    "{} is larger than 64 KiB; it cannot be a Vault token",
                    path.display()
                )))
            }
            Err(ReadError::Io(e)) => return Err(Error::io("reading", &path, e)),
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Error::Usage(format!("{} is not a UTF-8 text file", path.display())))?;
        if text.trim().is_empty() {
            return Ok(None);
        }
        let source = "~/.vault-token";
        Ok(Some(StaticToken {
            token: parse_token(text, source)?,
            source,
        }))
    }
}

impl AuthMethod for StaticToken {
    fn source(&self) -> String {
        self.source.to_string()
    }

    fn login(&self, _client: &Client, _deadline: &Deadline) -> Result<Issued> {
        Ok(Issued::fixed(secret_string(self.token.expose_secret())))
    }

    fn can_relogin(&self) -> bool {
        false
    }
}
