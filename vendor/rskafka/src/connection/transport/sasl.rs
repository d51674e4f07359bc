use std::{collections::HashMap, fmt::Debug, sync::Arc};

use futures::future::BoxFuture;
use parking_lot::Mutex;
use rsasl::{
    callback::{Context, Request, SessionCallback, SessionData},
    config::SASLConfig,
    mechanisms::scram::properties::{Iterations, Salt, SaltedPassword},
    prelude::SessionError,
    property::{AuthId, AuthzId, OAuthBearerKV, OAuthBearerToken, Password},
};

use crate::messenger::SaslError;

#[derive(Debug, Clone)]
pub enum SaslConfig {
    /// SASL - PLAIN
    ///
    /// # References
    /// - <https://datatracker.ietf.org/doc/html/rfc4616>
    Plain(Credentials),
    /// SASL - SCRAM-SHA-256
    ///
    /// # References
    /// - <https://datatracker.ietf.org/doc/html/rfc7677>
    ScramSha256(Credentials),
    /// SASL - SCRAM-SHA-512
    ///
    /// # References
    /// - <https://datatracker.ietf.org/doc/html/draft-melnikov-scram-sha-512-04>
    ScramSha512(Credentials),
    /// SASL - OAUTHBEARER
    ///
    /// # References
    /// - <https://datatracker.ietf.org/doc/html/rfc7628>
    Oauthbearer(OauthBearerCredentials),
}

#[derive(Debug, Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    /// SCRAM's salted passwords derived for these credentials (tickpipe patch), shared by
    /// every connection of the client.
    salted: SaltedPasswords,
}

impl Credentials {
    pub fn new(username: String, password: String) -> Self {
        Self {
            username,
            password,
            salted: SaltedPasswords::default(),
        }
    }
}

/// SCRAM's salted passwords, by hash, salt and iteration count (tickpipe patch). Deriving one is
/// PBKDF2 over thousands of rounds (SHA-512 was ~3 ms of CPU per login at 8,192 rounds, as
/// rsasl does it), and every connection of a client logs in with the same salt: derived once,
/// each later login skips it.
/// The salted password grants no more than the plain password these credentials hold anyway.
#[derive(Clone, Default)]
struct SaltedPasswords(Arc<Mutex<HashMap<(ScramHash, Vec<u8>, u32), Vec<u8>>>>);

impl Debug for SaltedPasswords {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SaltedPasswords(..)")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum ScramHash {
    Sha256,
    Sha512,
}

impl SaltedPasswords {
    /// `Hi(password, salt, iterations)` of RFC 5802: PBKDF2 with HMAC of `hash`, as long as
    /// the hash's output.
    fn get(&self, hash: ScramHash, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let key = (hash, salt.to_vec(), iterations);
        if let Some(salted) = self.0.lock().get(&key) {
            return salted.clone();
        }
        let salted = match hash {
            ScramHash::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password, salt, iterations).to_vec()
            }
            ScramHash::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<sha2::Sha512, 64>(password, salt, iterations).to_vec()
            }
        };
        self.0.lock().insert(key, salted.clone());
        salted
    }
}

/// A SCRAM login's answers: the salted password from [`SaltedPasswords`], else the credentials.
struct ScramCredentials {
    credentials: Credentials,
    hash: ScramHash,
}

impl SessionCallback for ScramCredentials {
    fn callback(
        &self,
        _session_data: &SessionData,
        context: &Context<'_>,
        request: &mut Request<'_>,
    ) -> Result<(), SessionError> {
        if request.is::<SaltedPassword>() {
            if let (Some(salt), Some(iterations)) =
                (context.get_ref::<Salt>(), context.get_ref::<Iterations>())
            {
                let password = self.credentials.password.as_bytes();
                let salted = self
                    .credentials
                    .salted
                    .get(self.hash, password, salt, *iterations);
                request.satisfy::<SaltedPassword>(&salted)?;
            }
            return Ok(());
        }
        request
            .satisfy::<AuthId>(self.credentials.username.as_str())?
            .satisfy::<Password>(self.credentials.password.as_bytes())?;
        Ok(())
    }
}

impl SaslConfig {
    pub(crate) async fn get_sasl_config(&self) -> Result<Arc<SASLConfig>, SaslError> {
        match self {
            Self::Plain(credentials) => Ok(SASLConfig::with_credentials(
                None,
                credentials.username.clone(),
                credentials.password.clone(),
            )?),
            Self::ScramSha256(credentials) | Self::ScramSha512(credentials) => {
                let hash = match self {
                    Self::ScramSha256(_) => ScramHash::Sha256,
                    _ => ScramHash::Sha512,
                };
                Ok(SASLConfig::builder()
                    .with_default_mechanisms()
                    .with_callback(ScramCredentials {
                        credentials: credentials.clone(),
                        hash,
                    })?)
            }
            Self::Oauthbearer(credentials) => {
                // Fetch the token first, since that's an async call.
                let token = (*credentials.callback)()
                    .await
                    .map_err(SaslError::Callback)?;

                struct OauthProvider {
                    authz_id: Option<String>,
                    bearer_kvs: Vec<(String, String)>,
                    token: String,
                }

                // Define a callback that is called while stepping through the SASL client
                // to provide necessary data for oauth.
                // Since this callback is synchronous, we fetch the token first. Generally
                // speaking the SASL process should not take long enough for the token to
                // expire, but we do need to check for token expiry each time we authenticate.
                impl SessionCallback for OauthProvider {
                    fn callback(
                        &self,
                        _session_data: &rsasl::callback::SessionData,
                        _context: &rsasl::callback::Context<'_>,
                        request: &mut rsasl::callback::Request<'_>,
                    ) -> Result<(), rsasl::prelude::SessionError> {
                        request
                            .satisfy::<OAuthBearerKV>(
                                &self
                                    .bearer_kvs
                                    .iter()
                                    .map(|(k, v)| (k.as_str(), v.as_str()))
                                    .collect::<Vec<_>>(),
                            )?
                            .satisfy::<OAuthBearerToken>(&self.token)?;
                        if let Some(authz_id) = &self.authz_id {
                            request.satisfy::<AuthzId>(authz_id)?;
                        }
                        Ok(())
                    }
                }

                Ok(SASLConfig::builder()
                    .with_default_mechanisms()
                    .with_callback(OauthProvider {
                        authz_id: credentials.authz_id.clone(),
                        bearer_kvs: credentials.bearer_kvs.clone(),
                        token,
                    })?)
            }
        }
    }

    pub(crate) fn mechanism(&self) -> &str {
        use rsasl::mechanisms::*;
        match self {
            Self::Plain { .. } => plain::PLAIN.mechanism.as_str(),
            Self::ScramSha256 { .. } => scram::SCRAM_SHA256.mechanism.as_str(),
            Self::ScramSha512 { .. } => scram::SCRAM_SHA512.mechanism.as_str(),
            Self::Oauthbearer { .. } => oauthbearer::OAUTHBEARER.mechanism.as_str(),
        }
    }
}

type DynError = Box<dyn std::error::Error + Send + Sync>;

/// Callback for fetching an OAUTH token. This should cache tokens and only request a new token
/// when the old is close to expiring.
pub type OauthCallback =
    Arc<dyn Fn() -> BoxFuture<'static, Result<String, DynError>> + Send + Sync>;

#[derive(Clone)]
pub struct OauthBearerCredentials {
    /// Callback that should return a token that is valid and will remain valid for
    /// long enough to complete authentication. This should cache the token and only request
    /// a new one when the old is close to expiring.
    /// The token must be on [RFC 6750](https://www.rfc-editor.org/rfc/rfc6750) format.
    pub callback: OauthCallback,
    /// ID of a user to impersonate. Can be left as `None` to authenticate using
    /// the user for the token returned by `callback`.
    pub authz_id: Option<String>,
    /// Custom key-value pairs sent as part of the SASL request. Most normal usage
    /// can let this be an empty list.
    pub bearer_kvs: Vec<(String, String)>,
}

impl Debug for OauthBearerCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OauthBearerCredentials")
            .field("authz_id", &self.authz_id)
            .field("bearer_kvs", &self.bearer_kvs)
            .finish_non_exhaustive()
    }
}
