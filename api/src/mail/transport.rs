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
                message: format!("{err:#}"),
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
