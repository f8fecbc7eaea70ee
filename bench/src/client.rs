//! A GraphQL client over HTTP/1.1 on loopback, as a browser or integration would be.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, de::IgnoredAny};
use serde_json::{Value, json};

use crate::{
    load::Outcome,
    mixed::{CacheStatus, Probe},
};

/// How long a client waits for an answer before it counts the request as timed out; longer
/// than the server's own 30-second limit, so a server timeout shows as the server's answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(40);

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    url: String,
}

/// A request written once and sent many times.
#[derive(Clone)]
pub struct Prepared {
    body: bytes::Bytes,
    authorization: Option<String>,
}

impl Prepared {
    pub fn new(query: &str, variables: Value, token: Option<&str>) -> Prepared {
        let body = json!({ "query": query, "variables": variables }).to_string();
        Prepared {
            body: body.into(),
            authorization: token.map(|t| format!("Bearer {t}")),
        }
    }
}

#[derive(Deserialize)]
struct Reply {
    data: Option<IgnoredAny>,
    errors: Option<Vec<Value>>,
}

impl Client {
    pub fn new(url: String) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(usize::MAX)
            .timeout(CLIENT_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .context("building the HTTP client")?;
        Ok(Client { http, url })
    }

    /// Sends `request` and says whether it was answered with data and no errors.
    pub async fn send(&self, request: &Prepared) -> Outcome {
        let mut builder = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(request.body.clone());
        if let Some(authorization) = &request.authorization {
            builder = builder.header("authorization", authorization);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(err) if err.is_timeout() => return Outcome::Timeout,
            Err(err) => return Outcome::Error(format!("sending: {err}")),
        };
        let status = response.status();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) if err.is_timeout() => return Outcome::Timeout,
            Err(err) => return Outcome::Error(format!("reading: {err}")),
        };
        if !status.is_success() {
            return Outcome::Error(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
        }
        match serde_json::from_slice::<Reply>(&body) {
            Ok(Reply {
                data: Some(_),
                errors: None,
            }) => Outcome::Ok,
            Ok(Reply { errors, .. }) => Outcome::Error(format!(
                "GraphQL errors: {}",
                serde_json::to_string(&errors).unwrap_or_default()
            )),
            Err(err) => Outcome::Error(format!("an answer that is not GraphQL: {err}")),
        }
    }

    /// Sends `request`, and reads from its answer whether the response cache served it and the
    /// value `probe` looks for.
    pub async fn send_probed(
        &self,
        request: &Prepared,
        probe: &Probe,
    ) -> (Outcome, CacheStatus, Option<i64>) {
        let mut builder = self
            .http
            .post(&self.url)
            .header("content-type", "application/json")
            .body(request.body.clone());
        if let Some(authorization) = &request.authorization {
            builder = builder.header("authorization", authorization);
        }
        let response = match builder.send().await {
            Ok(response) => response,
            Err(err) if err.is_timeout() => return (Outcome::Timeout, CacheStatus::Absent, None),
            Err(err) => {
                return (
                    Outcome::Error(format!("sending: {err}")),
                    CacheStatus::Absent,
                    None,
                );
            }
        };
        let status = response.status();
        let cache = CacheStatus::from_header(
            response
                .headers()
                .get("x-cache")
                .and_then(|v| v.to_str().ok()),
        );
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(err) if err.is_timeout() => return (Outcome::Timeout, cache, None),
            Err(err) => return (Outcome::Error(format!("reading: {err}")), cache, None),
        };
        if !status.is_success() {
            let said = format!("HTTP {status}: {}", String::from_utf8_lossy(&body));
            return (Outcome::Error(said), cache, None);
        }
        match probe.value_in_answer(&body) {
            Ok(value) => (Outcome::Ok, cache, Some(value)),
            Err(err) => (Outcome::Error(format!("{err:#}")), cache, None),
        }
    }

    /// Reads a counter's total from the server's Prometheus metrics; `None` when the server
    /// has no such counter.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let url = self.url.strip_suffix("/graphql")?.to_owned() + "/metrics";
        let text = self.http.get(url).send().await.ok()?.text().await.ok()?;
        crate::mixed::metric_total(&text, name)
    }

    /// Sends one query and returns its data, for setting up and checking scenarios.
    pub async fn data(
        &self,
        query: &str,
        variables: Value,
        token: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut builder = self.http.post(&self.url).json(&json!({
            "query": query,
            "variables": variables,
        }));
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        let reply: Value = builder
            .send()
            .await
            .context("sending a query")?
            .json()
            .await
            .context("reading a query's answer")?;
        if let Some(errors) = reply.get("errors") {
            bail!("the server answered with errors: {errors}");
        }
        reply.get("data").cloned().context("an answer without data")
    }
}
