//! Mail delivery: templates rendered into multipart messages, sent over SMTP (or written to a
//! folder in development) by a worker that drains the domain's outbox.

mod templates;
mod transport;
mod worker;

pub use templates::{Rendered, Renderer};
pub use transport::Transport;
pub use worker::{DeliveryWorker, backoff};
