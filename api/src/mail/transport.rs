//! Where mail goes: an SMTP server, or (with no SMTP_URL) one `.eml` file per message in a
//! folder, so a newcomer sees every message without a mail server.

use std::path::PathBuf;

use anyhow::Context;
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Folder(AsyncFileTransport<Tokio1Executor>),
}

/// Why a send failed, and whether trying again could help.
#[derive(Debug)]
pub struct SendError {
    pub message: String,
    pub permanent: bool,
}

impl Transport {
    pub fn smtp(url: &str) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .context("SMTP_URL is not a valid smtp:// or smtps:// URL")?
            .timeout(Some(std::time::Duration::from_secs(30)))
            .build();
        Ok(Transport::Smtp(transport))
    }

    pub fn folder(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the mail folder {}", dir.display()))?;
        Ok(Transport::Folder(AsyncFileTransport::new(dir)))
    }

    pub async fn send(&self, message: Message) -> Result<(), SendError> {
        match self {
            Transport::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|err| SendError {
                permanent: err.is_permanent(),
                message: summary(&err),
            }),
            Transport::Folder(folder) => {
                folder
                    .send(message)
                    .await
                    .map(drop)
                    .map_err(|err| SendError {
                        permanent: false,
                        message: format!("{err:#}"),
                    })
            }
        }
    }
}

/// What went wrong, without the server's own words: those often quote the recipient's address,
/// which stays out of logs and the outbox.
fn summary(err: &lettre::transport::smtp::Error) -> String {
    match err.status() {
        Some(code) => format!("the mail server answered {code}"),
        None if err.is_timeout() => "the mail server did not answer in time".to_owned(),
        None if err.is_permanent() => "the mail server refused the message".to_owned(),
        None => "could not reach the mail server".to_owned(),
    }
}
