//! `#[event("Group.Leaf", params = [...], ...)]` on a schema type: an event,
//! its subject parameters and capabilities.

use syn::Ident;

use super::attrs::docs_of;
use super::signature::self_surface_name;
use super::{Contract, EventDecl, Parser};
use crate::args::Args;
use crate::schema::SchemaTypes;
use trellis_manifest::manifest::{Event, EventCapabilities, SchemaRef};

impl Parser {
    pub(super) fn event(
        &mut self,
        attr: &syn::Attribute,
        item_attrs: &[syn::Attribute],
        ident: &Ident,
        out: &mut Contract,
        schema_types: &SchemaTypes,
    ) {
        let taken: Vec<String> = out.manifest.events.keys().cloned().collect();
        let Some(mut a) = self.args(attr, "event", &["params", "capabilities"]) else {
            return;
        };
        let name = self_surface_name(&mut a, "event", &taken);
        let params = a.str_list("params");
        let caps = a.list("capabilities");
        a.finish();
        let Some((name, name_span)) = name else {
            return;
        };
        if !schema_types.contains(&ident.to_string()) {
            self.errors.at(
                ident.span(),
                format!("event type `{ident}` must derive Serialize and Deserialize"),
            );
            return;
        }
        self.spans.insert(["events", name.as_str()], name_span);
        let capabilities = caps.map(|(k, args)| {
            let mut c = Args::new(
                "capabilities(...)",
                k.span(),
                &["publish", "subscribe"],
                args,
                &mut self.errors,
            );
            let publish = c.ident_list("publish");
            let subscribe = c.ident_list("subscribe");
            c.finish();
            EventCapabilities {
                publish: self.caps(publish),
                subscribe: self.caps(subscribe),
            }
        });
        let mut subject = format!("events.{}.{name}", self.version);
        let params = params.map(|list| {
            list.iter()
                .enumerate()
                .map(|(i, lit)| {
                    self.spans.insert(
                        [
                            "events".to_owned(),
                            name.clone(),
                            "params".to_owned(),
                            i.to_string(),
                        ],
                        lit.span(),
                    );
                    subject.push_str(&format!(".{{{}}}", lit.value()));
                    lit.value()
                })
                .collect::<Vec<_>>()
        });
        out.manifest.events.insert(
            name.clone(),
            Event {
                version: self.version.clone(),
                subject,
                params,
                event: SchemaRef::new(ident.to_string()),
                capabilities,
                docs: docs_of(item_attrs),
            },
        );
        out.events.push(EventDecl {
            name,
            ident: ident.clone(),
        });
    }
}
