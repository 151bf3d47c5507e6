//! A key's stored revisions: [`KvHandle::history`], walked with direct gets.

use std::time::SystemTime;

use async_nats::jetstream;
use async_nats::jetstream::stream::{DirectGetErrorKind, LastRawMessageErrorKind};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::entry::KvChange;
use super::error::KvError;
use super::handle::KvHandle;
use super::key::validate_key;
use super::message::change_from_message;

impl<T> KvHandle<T>
where
    T: Serialize + DeserializeOwned,
{
    /// Every stored revision of `key`, oldest first: values, deletion and
    /// purge markers (a purge removes the revisions before it). The bucket
    /// keeps a limited number of revisions per key. Empty if the key was
    /// never written. Fails with [`KvError::Decode`] if a stored value does
    /// not decode.
    pub async fn history(&self, key: &str) -> Result<Vec<KvChange<T>>, KvError> {
        validate_key(key)?;
        let subject = format!("{}{key}", self.store.prefix);
        let stream = &self.store.stream;
        let direct = stream.cached_info().config.allow_direct;
        // Walk the key's messages with direct gets (no consumer), up to the
        // latest one at the time of the call.
        let Some(last) = self.message_for(direct, &subject, None, key).await? else {
            return Ok(Vec::new());
        };
        let mut changes = Vec::new();
        let mut next = 1;
        while next < last.sequence {
            let Some(message) = self.message_for(direct, &subject, Some(next), key).await? else {
                break;
            };
            if message.sequence >= last.sequence {
                break;
            }
            next = message.sequence + 1;
            changes.push(change_from_message(
                &self.store.prefix,
                &message.subject,
                Some(&message.headers),
                &message.payload,
                message.sequence,
                SystemTime::from(message.time),
            )?);
        }
        changes.push(change_from_message(
            &self.store.prefix,
            &last.subject,
            Some(&last.headers),
            &last.payload,
            last.sequence,
            SystemTime::from(last.time),
        )?);
        Ok(changes)
    }

    /// The first message on `subject` at or after sequence `from`, or the
    /// last one if `from` is `None`.
    async fn message_for(
        &self,
        direct: bool,
        subject: &str,
        from: Option<u64>,
        key: &str,
    ) -> Result<Option<jetstream::message::StreamMessage>, KvError> {
        let stream = &self.store.stream;
        if direct {
            let builder = stream.direct_get_builder();
            let builder = match from {
                Some(from) => builder.next_by_subject(subject).sequence(from),
                None => builder.last_by_subject(subject),
            };
            match builder.send().await {
                Ok(message) => Ok(Some(message)),
                Err(err) if err.kind() == DirectGetErrorKind::NotFound => Ok(None),
                Err(err) => Err(KvError::nats("history", key, err)),
            }
        } else {
            let builder = stream.raw_message_builder();
            let builder = match from {
                Some(from) => builder.next_by_subject(subject).sequence(from),
                None => builder.last_by_subject(subject),
            };
            match builder.send().await {
                Ok(message) => Ok(Some(message)),
                Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
                Err(err) => Err(KvError::nats("history", key, err)),
            }
        }
    }
}
