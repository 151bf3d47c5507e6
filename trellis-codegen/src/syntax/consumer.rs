//! `#[event_consumer(uses(...), self = [...], ...)]` on a marker struct: an
//! event consumer group, its events and delivery settings.

use std::collections::BTreeMap;

use syn::LitStr;

use super::attrs::docs_of;
use super::{Contract, Parser};
use crate::args::Args;
use trellis_manifest::manifest::{EventConsumerGroup, Ordering, Replay};
use trellis_manifest::names;

impl Parser {
    pub(super) fn consumer(
        &mut self,
        attr: &syn::Attribute,
        s: &syn::ItemStruct,
        out: &mut Contract,
    ) {
        let group = names::snake_case(&s.ident.to_string());
        let Some(mut a) = self.args(
            attr,
            "event_consumer",
            &[
                "uses",
                "self",
                "replay",
                "ordering",
                "concurrency",
                "ack_wait_ms",
                "max_deliver",
                "backoff_ms",
            ],
        ) else {
            return;
        };
        let uses_arg = a.list("uses");
        let own = a.str_list("self");
        let replay = a.str("replay");
        let ordering = a.str("ordering");
        let concurrency = a.uint("concurrency");
        let ack_wait = a.uint("ack_wait_ms");
        let max_deliver = a.uint("max_deliver");
        let backoff = a.uint_list("backoff_ms");
        let span = a.span();
        a.finish();
        let base = |k: &str| vec!["eventConsumers".to_owned(), group.clone(), k.to_owned()];
        self.spans
            .insert(["eventConsumers", group.as_str()], s.ident.span());
        let mut uses_map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        if let Some((k, args)) = uses_arg {
            let mut u = Args::new("uses(...)", k.span(), &[], args, &mut self.errors);
            let pairs = u.remaining_str_lists();
            for (alias_ident, events) in pairs {
                let Some(alias) = self.uses.get(&alias_ident.to_string()).cloned() else {
                    self.errors.at(
                        alias_ident.span(),
                        format!(
                            "`{alias_ident}` is not a #[uses] declaration of this contract: \
                             declare `#[uses(contract = \"...\", subscribe = [...])] pub struct {alias_ident};`"
                        ),
                    );
                    continue;
                };
                for lit in &events {
                    self.spans.insert(
                        [
                            "eventConsumers".to_owned(),
                            group.clone(),
                            "uses".to_owned(),
                            alias.clone(),
                            lit.value(),
                        ],
                        lit.span(),
                    );
                }
                uses_map.insert(alias, events.iter().map(LitStr::value).collect());
            }
        }
        if let Some(list) = &own {
            for lit in list {
                self.spans.insert(
                    [
                        "eventConsumers".to_owned(),
                        group.clone(),
                        "self".to_owned(),
                        lit.value(),
                    ],
                    lit.span(),
                );
            }
        }
        if uses_map.is_empty() && own.as_ref().is_none_or(Vec::is_empty) {
            self.errors.at(
                span,
                "an event consumer needs events: `uses(Alias = [\"Group.Event\"])` and/or `self = [\"Group.Event\"]`",
            );
            return;
        }
        let replay = match replay {
            None => Replay::New,
            Some(l) => match l.value().as_str() {
                "new" => Replay::New,
                "all" => Replay::All,
                other => {
                    self.errors.at(
                        l.span(),
                        format!("unknown replay `{other}`: use \"new\" or \"all\""),
                    );
                    return;
                }
            },
        };
        let concurrency_n = concurrency.map(|(n, _)| n).unwrap_or(1);
        if let Some((_, sp)) = concurrency {
            self.spans.insert(base("concurrency"), sp);
        }
        let ordering = match ordering {
            None => (concurrency_n == 1).then_some(Ordering::Strict),
            Some(l) => {
                self.spans.insert(base("ordering"), l.span());
                match l.value().as_str() {
                    "strict" => Some(Ordering::Strict),
                    "unordered" => None,
                    other => {
                        self.errors.at(
                            l.span(),
                            format!("unknown ordering `{other}`: use \"strict\" or \"unordered\""),
                        );
                        return;
                    }
                }
            }
        };
        for (k, v) in [("ackWaitMs", &ack_wait), ("maxDeliver", &max_deliver)] {
            if let Some((_, sp)) = v {
                self.spans.insert(base(k), *sp);
            }
        }
        out.manifest.event_consumers.insert(
            group.clone(),
            EventConsumerGroup {
                uses: (!uses_map.is_empty()).then_some(uses_map),
                own: own.map(|l| l.iter().map(LitStr::value).collect()),
                replay: Some(replay),
                ordering,
                concurrency: Some(concurrency_n),
                ack_wait_ms: Some(ack_wait.map(|(n, _)| n).unwrap_or(300_000)),
                max_deliver: Some(max_deliver.map(|(n, _)| n).unwrap_or(6)),
                backoff_ms: backoff,
                docs: docs_of(&s.attrs),
            },
        );
        out.consumers.push((group, s.ident.clone()));
    }
}
