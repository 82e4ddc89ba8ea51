//! The model behind an agent: the Chat Completions API of any OpenAI-compatible server through
//! `async-openai`, or the seed's echo fallback where no model is configured. Failures come out as
//! this module's own [`ModelError`]: transient ones (timeouts, 5xx, 429, a dropped connection)
//! are worth retrying, permanent ones are not.

use std::sync::Arc;
use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{CreateChatCompletionRequest, CreateChatCompletionResponse};
use secrecy::{ExposeSecret, SecretString};

use crate::config::AgentConfig;

/// OpenAI's own API, where nothing else is configured.
pub const OPENAI_API_BASE: &str = "https://api.openai.com/v1";

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Worth another try later (timeout, 5xx, 429, connection).
    #[error("{0}")]
    Transient(String),
    /// The request itself is refused (bad key, unknown model, malformed answer).
    #[error("{0}")]
    Permanent(String),
}

/// Where an agent's turns go.
pub enum Endpoint {
    Model {
        base_url: String,
        api_key: Option<SecretString>,
        /// A tenant's own URL: fetched only at public addresses (unless private fetch is allowed).
        guarded: bool,
    },
    /// No model configured: the seed's echo fallback answers.
    Echo,
}

impl Endpoint {
    /// The agent's own base URL and key, else the operator's (`OPENAI_BASE_URL`, `OPENAI_API_KEY`).
    /// A configured base URL is called even without a key (Ollama, vLLM); OpenAI itself needs one,
    /// so with neither a URL nor a key the echo fallback answers.
    pub fn resolve(agent_base_url: Option<&str>, agent_key: Option<SecretString>, config: &AgentConfig) -> Self {
        let api_key = agent_key.or_else(|| config.openai_api_key.clone());
        match (agent_base_url, &config.openai_base_url) {
            (Some(url), _) => Endpoint::Model { base_url: url.to_owned(), api_key, guarded: true },
            (None, Some(url)) => Endpoint::Model { base_url: url.clone(), api_key, guarded: false },
            (None, None) if api_key.is_some() => {
                Endpoint::Model { base_url: OPENAI_API_BASE.to_owned(), api_key, guarded: false }
            }
            (None, None) => Endpoint::Echo,
        }
    }
}

/// Calls models. The HTTP clients are built once: the operator's, and the guarded one for URLs
/// tenants give (its resolver refuses private addresses).
#[derive(Clone)]
pub struct ModelClient {
    operator: reqwest::Client,
    guarded: reqwest::Client,
    timeout: Duration,
}

impl ModelClient {
    pub fn new(config: &AgentConfig, guarded: reqwest::Client) -> anyhow::Result<Arc<Self>> {
        crate::plugins::fetch::install_crypto_provider();
        let operator = reqwest::Client::builder().user_agent(concat!("omnichat/", env!("CARGO_PKG_VERSION"))).build()?;
        Ok(Arc::new(Self { operator, guarded, timeout: config.model_timeout }))
    }

    /// One Chat Completions call within the configured timeout.
    pub async fn complete(
        &self,
        endpoint: &Endpoint,
        request: CreateChatCompletionRequest,
    ) -> Result<CreateChatCompletionResponse, ModelError> {
        let Endpoint::Model { base_url, api_key, guarded } = endpoint else {
            return Err(ModelError::Permanent("no model is configured".into()));
        };
        let key = api_key.as_ref().map(|k| k.expose_secret().to_owned()).unwrap_or_default();
        let config = OpenAIConfig::new().with_api_base(base_url.clone()).with_api_key(key);
        let http = if *guarded { self.guarded.clone() } else { self.operator.clone() };
        // Without async-openai's own retry layer: a failed call goes back to the durable job,
        // which retries with its own bounded backoff (and a crash in between loses nothing).
        let client = Client::build(http.clone(), config).with_http_service(ReqwestService::new(http));
        match tokio::time::timeout(self.timeout, client.chat().create(request)).await {
            Err(_) => Err(ModelError::Transient(format!("the model did not answer within {:?}", self.timeout))),
            Ok(Ok(response)) => Ok(response),
            // A proxy may echo the key back in its error: it never reaches a note, a run or a log.
            Ok(Err(err)) => Err(match (classify(err), api_key.as_ref().map(|k| k.expose_secret())) {
                (ModelError::Transient(text), Some(key)) if key.len() >= 4 => {
                    ModelError::Transient(text.replace(key, "[redacted]"))
                }
                (ModelError::Permanent(text), Some(key)) if key.len() >= 4 => {
                    ModelError::Permanent(text.replace(key, "[redacted]"))
                }
                (error, _) => error,
            }),
        }
    }
}

/// Timeouts, 5xx, 429 and transport failures are transient; the rest is permanent. The texts
/// carry the provider's message, never the key.
fn classify(err: OpenAIError) -> ModelError {
    match err {
        OpenAIError::ApiError(api) => {
            let status = api.status_code.as_u16();
            let text = format!("the model answered {status}: {}", truncate(&api.api_error.message, 300));
            if status == 429 || status == 408 || status >= 500 {
                ModelError::Transient(text)
            } else {
                ModelError::Permanent(text)
            }
        }
        OpenAIError::Reqwest(e) => {
            let text = if e.is_timeout() {
                "the model did not answer in time".to_owned()
            } else if e.is_connect() {
                "cannot reach the model's server".to_owned()
            } else {
                format!("the model's server failed: {}", e.without_url())
            };
            ModelError::Transient(text)
        }
        OpenAIError::JSONDeserialize(e, _) => ModelError::Permanent(format!("the model's answer is not a chat completion: {e}")),
        OpenAIError::StreamError(e) => ModelError::Transient(format!("stream failed: {e}")),
        other => ModelError::Permanent(other.to_string()),
    }
}

pub fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// The seed's fallback when no model is configured: an echo of the customer's turn.
pub fn echo_reply(turn_text: &str) -> String {
    format!("Echo: {}", truncate(turn_text.trim(), 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(key: Option<&str>, base: Option<&str>) -> AgentConfig {
        let mut config = crate::Config::for_tests("sqlite://unused.db", &std::env::temp_dir()).agents;
        config.openai_api_key = key.map(|k| SecretString::from(k.to_owned()));
        config.openai_base_url = base.map(str::to_owned);
        config
    }

    #[test]
    fn without_a_key_or_a_url_the_echo_answers() {
        assert!(matches!(Endpoint::resolve(None, None, &config(None, None)), Endpoint::Echo));
    }

    #[test]
    fn a_key_alone_goes_to_openai_and_a_url_alone_is_called_without_one() {
        let Endpoint::Model { base_url, guarded, .. } = Endpoint::resolve(None, None, &config(Some("k"), None)) else {
            panic!("a model")
        };
        assert_eq!(base_url, OPENAI_API_BASE);
        assert!(!guarded);
        let Endpoint::Model { api_key, .. } = Endpoint::resolve(None, None, &config(None, Some("http://ollama:11434/v1"))) else {
            panic!("a model")
        };
        assert!(api_key.is_none());
    }

    #[test]
    fn an_agents_own_url_is_guarded_and_wins() {
        let Endpoint::Model { base_url, guarded, .. } =
            Endpoint::resolve(Some("https://llm.example.com/v1"), None, &config(Some("k"), Some("http://ollama/v1")))
        else {
            panic!("a model")
        };
        assert_eq!(base_url, "https://llm.example.com/v1");
        assert!(guarded);
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
