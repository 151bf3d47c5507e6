//! `#[operation("Group.Leaf", ...)] fn name(input: In) -> Out;`: an
//! operation, its capabilities, progress and cancel, and its send transfer
//! (`transfer(send, store = ..., key = ...)`).

use syn::Ident;
use syn::spanned::Spanned as _;

use super::attrs::{doc_attrs, docs_of};
use super::signature::self_surface_name;
use super::{Contract, Parser, SurfaceDecl};
use crate::args::{Arg, Args};
use crate::schema::SchemaTypes;
use trellis_manifest::manifest::{
    Operation, OperationCapabilities, SchemaRef, SendDirection, SendTransfer,
};

impl Parser {
    pub(super) fn operation(
        &mut self,
        attr: &syn::Attribute,
        f: &syn::ForeignItemFn,
        out: &mut Contract,
        types: &SchemaTypes,
    ) {
        let taken: Vec<String> = out.manifest.operations.keys().cloned().collect();
        let Some(mut a) = self.args(
            attr,
            "operation",
            &["progress", "capabilities", "cancel", "transfer"],
        ) else {
            return;
        };
        let name = self_surface_name(&mut a, "operation", &taken);
        let progress = a.ident("progress");
        let caps = a.list("capabilities");
        let cancel = a.bool("cancel");
        let transfer = a.list("transfer");
        a.finish();
        let Some((name, name_span)) = name else {
            return;
        };
        self.spans.insert(["operations", name.as_str()], name_span);
        let base = |k: &str| vec!["operations".to_owned(), name.clone(), k.to_owned()];
        let capabilities = match caps {
            Some((k, args)) => {
                let mut c = Args::new(
                    "capabilities(...)",
                    k.span(),
                    &["call", "observe", "cancel", "control"],
                    args,
                    &mut self.errors,
                );
                let call = c.ident_list("call");
                let observe = c.ident_list("observe");
                let cancel = c.ident_list("cancel");
                let control = c.ident_list("control");
                c.finish();
                Some(OperationCapabilities {
                    call: self.caps(call),
                    observe: self.caps(observe),
                    cancel: self.caps(cancel),
                    control: self.caps(control),
                })
            }
            None => None,
        };
        let transfer = match transfer {
            Some((k, args)) => self.send_transfer(k, args, &name),
            None => None,
        };
        let Some((input, output, _)) = self.signature(f, false) else {
            return;
        };
        let input_at = input.as_ref().map_or(f.sig.ident.span(), |t| t.span());
        let input_schema = self.surface_schema(input.as_ref(), input_at, types, &mut out.manifest);
        let output_schema =
            self.surface_schema(Some(&output), output.span(), types, &mut out.manifest);
        let (Some(input_schema), Some(output_schema)) = (input_schema, output_schema) else {
            return;
        };
        self.spans.insert(base("input"), input_at);
        self.spans.insert(base("output"), output.span());
        if let Some(p) = &progress {
            self.spans.insert(base("progress"), p.span());
        }
        out.manifest.operations.insert(
            name.clone(),
            Operation {
                version: self.version.clone(),
                subject: format!("operations.{}.{name}", self.version),
                input: SchemaRef::new(input_schema),
                progress: progress.as_ref().map(|p| SchemaRef::new(p.to_string())),
                output: SchemaRef::new(output_schema),
                transfer,
                capabilities,
                signals: None,
                cancel: cancel.map(|(b, _)| b),
                docs: docs_of(&f.attrs),
            },
        );
        out.operations.push(SurfaceDecl {
            name,
            ident: f.sig.ident.clone(),
            input,
            output,
            error: None,
            progress,
            docs: doc_attrs(&f.attrs),
        });
    }

    fn send_transfer(&mut self, k: Ident, args: Vec<Arg>, op: &str) -> Option<SendTransfer> {
        let mut t = Args::new(
            "transfer(...)",
            k.span(),
            &[
                "send",
                "store",
                "key",
                "content_type",
                "metadata",
                "max_bytes",
                "expires_in_ms",
            ],
            args,
            &mut self.errors,
        );
        let send = t.bool("send");
        let store = t.ident("store");
        let key = t.str("key");
        let content_type = t.str("content_type");
        let metadata = t.str("metadata");
        let max_bytes = t.uint("max_bytes");
        let expires = t.uint("expires_in_ms");
        if send.is_none() {
            t.errors().at(
                k.span(),
                "an operation transfer receives bytes from the caller: write `transfer(send, store = ..., key = \"/...\")`",
            );
        }
        if store.is_none() {
            t.errors().at(
                k.span(),
                "the transfer needs `store = <Store>` naming a #[store] of this contract",
            );
        }
        if key.is_none() {
            t.errors().at(
                k.span(),
                "the transfer needs `key = \"/pointer\"`: a JSON pointer to the object key in the input",
            );
        }
        t.finish();
        let path = |f: &str| {
            vec![
                "operations".to_owned(),
                op.to_owned(),
                "transfer".to_owned(),
                f.to_owned(),
            ]
        };
        let store_ident = store?;
        let alias = match self.stores.get(&store_ident.to_string()) {
            Some(alias) => alias.clone(),
            None => {
                self.errors.at(
                    store_ident.span(),
                    format!(
                        "`{store_ident}` is not a #[store] of this contract: declare \
                         `#[store(purpose = \"...\")] pub struct {store_ident};` or name an existing store"
                    ),
                );
                return None;
            }
        };
        self.spans.insert(path("store"), store_ident.span());
        let key = key?;
        self.spans.insert(path("key"), key.span());
        for (f, lit) in [("contentType", &content_type), ("metadata", &metadata)] {
            if let Some(l) = lit {
                self.spans.insert(path(f), l.span());
            }
        }
        for (f, v) in [("maxBytes", &max_bytes), ("expiresInMs", &expires)] {
            if let Some((_, sp)) = v {
                self.spans.insert(path(f), *sp);
            }
        }
        Some(SendTransfer {
            direction: SendDirection::Send,
            store: alias,
            key: key.value(),
            content_type: content_type.map(|l| l.value()),
            metadata: metadata.map(|l| l.value()),
            expires_in_ms: expires.map(|(n, _)| n),
            max_bytes: max_bytes.map(|(n, _)| n),
        })
    }
}
