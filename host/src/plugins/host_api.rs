//! The `host` interface a plugin imports (both contract versions): logging, the guarded fetch,
//! secrets used by name, and (0.2, during `connect`) secrets generated for it.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::fetch::{FetchFailure, FetchRequest, FetchResponse};
use super::runtime::{CallState, v1, v2};

const MAX_LOG_LINE: usize = 2000;

/// What both versions' imports do; the per-version impls below only convert types.
impl CallState {
    fn write_log(&self, level: tracing::Level, message: &str) {
        let plugin = self.plugin_id.as_str();
        let channel = self.channel_id.as_deref().unwrap_or("-");
        let message: String = self.secrets.scrub(message).chars().take(MAX_LOG_LINE).collect();
        match level {
            tracing::Level::TRACE => tracing::trace!(plugin.id = plugin, channel.id = channel, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(plugin.id = plugin, channel.id = channel, "{message}"),
            tracing::Level::INFO => tracing::info!(plugin.id = plugin, channel.id = channel, "{message}"),
            tracing::Level::WARN => tracing::warn!(plugin.id = plugin, channel.id = channel, "{message}"),
            _ => tracing::error!(plugin.id = plugin, channel.id = channel, "{message}"),
        }
    }

    async fn guarded_fetch(&mut self, request: FetchRequest) -> Result<FetchResponse, FetchFailure> {
        let outcome = self.fetcher.fetch(request, Some(&self.grants), &self.secrets, self.deadline).await;
        if let Err(failure) = &outcome {
            tracing::info!(plugin.id = %self.plugin_id, failure = ?failure, "plugin fetch refused or failed");
        }
        outcome
    }

    fn hmac(&self, secret_name: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        let secret = self.secrets.get(secret_name).ok_or_else(|| format!("the channel has no secret {secret_name}"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).map_err(|e| e.to_string())?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    fn secret_matches(&self, secret_name: &str, candidate: &str) -> Option<bool> {
        let secret = self.secrets.get(secret_name)?;
        Some(bool::from(secret.expose_secret().as_bytes().ct_eq(candidate.as_bytes())))
    }

    fn generate(&mut self, secret_name: String) -> Result<(), String> {
        let Some(generated) = self.generated.as_mut() else {
            return Err("secrets can be generated only during connect".into());
        };
        if secret_name.is_empty() || secret_name.len() > 64 {
            return Err("a secret name is 1 to 64 characters".into());
        }
        let bytes: [u8; 24] = rand::random();
        let value = SecretString::from(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
        generated.push((secret_name.clone(), value.clone()));
        self.secrets.insert(secret_name, value);
        Ok(())
    }
}

/// The glue of one contract version: its own record types onto the shared implementation.
macro_rules! host_imports {
    ($version:ident) => {
        impl $version::omnichat::channel::types::Host for CallState {}

        impl $version::omnichat::channel::host::Host for CallState {
            async fn log(&mut self, level: $version::omnichat::channel::host::LogLevel, message: String) {
                use $version::omnichat::channel::host::LogLevel as L;
                let level = match level {
                    L::Trace => tracing::Level::TRACE,
                    L::Debug => tracing::Level::DEBUG,
                    L::Info => tracing::Level::INFO,
                    L::Warn => tracing::Level::WARN,
                    L::Error => tracing::Level::ERROR,
                };
                self.write_log(level, &message);
            }

            async fn fetch(
                &mut self,
                request: $version::omnichat::channel::host::HttpRequest,
            ) -> Result<$version::omnichat::channel::host::HttpResponse, $version::omnichat::channel::host::FetchError> {
                use $version::omnichat::channel::host::{FetchError, HttpResponse};
                use $version::omnichat::channel::types::Header;
                let request = FetchRequest {
                    method: request.method,
                    url: request.url,
                    headers: request.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                    body: request.body,
                };
                match self.guarded_fetch(request).await {
                    Ok(response) => Ok(HttpResponse {
                        status: response.status,
                        headers: response.headers.into_iter().map(|(name, value)| Header { name, value }).collect(),
                        body: response.body,
                    }),
                    Err(failure) => Err(match failure {
                        FetchFailure::Denied(why) => FetchError::Denied(why),
                        FetchFailure::InvalidRequest(why) => FetchError::InvalidRequest(why),
                        FetchFailure::Timeout => FetchError::Timeout,
                        FetchFailure::TooLarge => FetchError::TooLarge,
                        FetchFailure::Failed(why) => FetchError::Failed(why),
                    }),
                }
            }

            async fn hmac_sha256(&mut self, secret_name: String, data: Vec<u8>) -> Result<Vec<u8>, String> {
                self.hmac(&secret_name, &data)
            }

            async fn secret_equals(&mut self, secret_name: String, candidate: String) -> Option<bool> {
                self.secret_matches(&secret_name, &candidate)
            }

            host_imports!(@extra $version);
        }
    };
    (@extra v2) => {
        async fn generate_secret(&mut self, secret_name: String) -> Result<(), String> {
            self.generate(secret_name)
        }
    };
    (@extra v1) => {};
}

host_imports!(v2);
host_imports!(v1);
