//! The `host` interface a plugin imports: logging, the guarded fetch, and secrets used by name.

use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use super::fetch::{FetchFailure, FetchRequest};
use super::runtime::CallState;
use super::runtime::omnichat::channel::host::{FetchError, Host, HttpRequest, HttpResponse, LogLevel};
use super::runtime::omnichat::channel::types::{self, Header};

const MAX_LOG_LINE: usize = 2000;

impl types::Host for CallState {}

impl Host for CallState {
    async fn log(&mut self, level: LogLevel, message: String) {
        let plugin = self.plugin.entry.id.as_str();
        let channel = self.channel_id.as_deref().unwrap_or("-");
        let message: String = message.chars().take(MAX_LOG_LINE).collect();
        match level {
            LogLevel::Trace => tracing::trace!(plugin.id = plugin, channel.id = channel, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin.id = plugin, channel.id = channel, "{message}"),
            LogLevel::Info => tracing::info!(plugin.id = plugin, channel.id = channel, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin.id = plugin, channel.id = channel, "{message}"),
            LogLevel::Error => tracing::error!(plugin.id = plugin, channel.id = channel, "{message}"),
        }
    }

    async fn fetch(&mut self, request: HttpRequest) -> Result<HttpResponse, FetchError> {
        let request = FetchRequest {
            method: request.method,
            url: request.url,
            headers: request.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            body: request.body,
        };
        let outcome = self.fetcher.fetch(request, &self.plugin.grants, &self.secrets, self.deadline).await;
        match outcome {
            Ok(response) => Ok(HttpResponse {
                status: response.status,
                headers: response.headers.into_iter().map(|(name, value)| Header { name, value }).collect(),
                body: response.body,
            }),
            Err(failure) => {
                tracing::info!(plugin.id = %self.plugin.entry.id, failure = ?failure, "plugin fetch refused or failed");
                Err(match failure {
                    FetchFailure::Denied(why) => FetchError::Denied(why),
                    FetchFailure::InvalidRequest(why) => FetchError::InvalidRequest(why),
                    FetchFailure::Timeout => FetchError::Timeout,
                    FetchFailure::TooLarge => FetchError::TooLarge,
                    FetchFailure::Failed(why) => FetchError::Failed(why),
                })
            }
        }
    }

    async fn hmac_sha256(&mut self, secret_name: String, data: Vec<u8>) -> Result<Vec<u8>, String> {
        let secret = self.secrets.get(&secret_name).ok_or_else(|| format!("the channel has no secret {secret_name}"))?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()).map_err(|e| e.to_string())?;
        mac.update(&data);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    async fn secret_equals(&mut self, secret_name: String, candidate: String) -> Option<bool> {
        let secret = self.secrets.get(&secret_name)?;
        Some(bool::from(secret.expose_secret().as_bytes().ct_eq(candidate.as_bytes())))
    }
}
