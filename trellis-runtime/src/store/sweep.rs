//! Purging stray staged chunks: a caller may publish below its own staged
//! subject prefix outside any accepted transfer (its permission names the
//! prefix, not one transfer). Such subjects are referenced by no object
//! and no transfer, so nothing else would ever purge them.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use futures::TryStreamExt as _;

use super::error::nats;
use super::{Store, StoreError};

impl Store {
    /// The object store's bucket name.
    pub(crate) fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Purges every staged chunk subject (`$O.<bucket>.C.<caller>.<id>`)
    /// that no live object refers to, that is not in `keep` (the staging
    /// ids of transfers in progress) and whose newest message is older
    /// than `grace`. Returns how many subjects were purged.
    pub(crate) async fn sweep_staged(
        &self,
        keep: &HashSet<String>,
        grace: Duration,
    ) -> Result<usize, StoreError> {
        let prefix = format!("$O.{}.C.", self.bucket);
        // Subjects first, references after: an object committed in between
        // is seen as referenced.
        let staged: Vec<String> = self
            .stream
            .info_with_subjects(format!("{prefix}*.*"))
            .await
            .map_err(nats("listing staged chunk subjects"))?
            .map_ok(|(subject, _)| subject)
            .try_collect()
            .await
            .map_err(nats("listing staged chunk subjects"))?;
        if staged.is_empty() {
            return Ok(0);
        }
        let mut referenced = HashSet::new();
        self.scan("", |_, meta| {
            referenced.insert(meta.nuid.clone());
        })
        .await?;
        let mut purged = 0;
        for subject in staged {
            let Some(id) = subject.strip_prefix(&prefix) else {
                continue;
            };
            if referenced.contains(id) || keep.contains(id) {
                continue;
            }
            let newest = match self
                .stream
                .direct_get_last_for_subject(subject.as_str())
                .await
            {
                Ok(message) => SystemTime::from(message.time),
                // Purged meanwhile.
                Err(_) => continue,
            };
            if newest.elapsed().unwrap_or_default() < grace {
                continue;
            }
            self.stream
                .purge()
                .filter(subject.as_str())
                .await
                .map_err(nats("purging stray staged chunks"))?;
            purged += 1;
        }
        Ok(purged)
    }
}
