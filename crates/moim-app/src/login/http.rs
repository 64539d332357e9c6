//! The one HTTP client every login uses to talk to providers: it never
//! follows a redirect (a provider's answer that redirects would otherwise
//! let it point moim at any internal address), gives up after a few
//! seconds, and reads at most `MAX_BODY` of an answer.

use std::time::Duration;

use openidconnect::{HttpRequest, HttpResponse};

const TIMEOUT: Duration = Duration::from_secs(10);
/// A discovery document, a key set or a token answer is a few KiB.
const MAX_BODY: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{}", with_causes(.0))]
    Send(#[from] reqwest::Error),
    #[error("the answer is over {MAX_BODY} bytes")]
    TooLarge,
    #[error("cannot build the request: {0}")]
    Build(String),
}

/// reqwest's own message is "error sending request"; the causes below it
/// say whether DNS, the connection or TLS failed.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[derive(Clone)]
pub struct ProviderHttp {
    client: reqwest::Client,
}

impl ProviderHttp {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(TIMEOUT)
            .user_agent(concat!("moim/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self { client }
    }

    /// Sends one request as the `openidconnect` and `oauth2` crates hand it over.
    pub async fn send(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let (parts, body) = req.into_parts();
        let url = reqwest::Url::parse(&parts.uri.to_string())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        let mut response = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await?;
        let mut out = openidconnect::http::Response::builder().status(response.status());
        for (name, value) in response.headers() {
            out = out.header(name, value);
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(HttpError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        out.body(body).map_err(|e| HttpError::Build(e.to_string()))
    }

    /// A GET with a bearer token, for the user endpoints of OAuth providers.
    pub async fn get_json(
        &self,
        url: &str,
        bearer: &str,
    ) -> Result<(u16, serde_json::Value), HttpError> {
        let req = openidconnect::http::Request::builder()
            .method("GET")
            .uri(url)
            .header("authorization", format!("Bearer {bearer}"))
            .header("accept", "application/json")
            .body(Vec::new())
            .map_err(|e| HttpError::Build(e.to_string()))?;
        let res = self.send(req).await?;
        let status = res.status().as_u16();
        let value = serde_json::from_slice(res.body()).unwrap_or(serde_json::Value::Null);
        Ok((status, value))
    }

    /// The form `openidconnect`'s async client traits take.
    pub fn as_client(
        &self,
    ) -> impl Fn(
        HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, HttpError>> + Send>,
    > + Send
           + Sync
           + '_ {
        move |req| {
            let this = self.clone();
            Box::pin(async move { this.send(req).await })
        }
    }
}

impl Default for ProviderHttp {
    fn default() -> Self {
        Self::new()
    }
}
