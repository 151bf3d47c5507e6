//! `#[rpc("Group.Leaf", ...)] fn name(input: In) -> Result<Out, Error>;`:
//! an RPC, its capabilities, declared error and receive transfer.

use syn::spanned::Spanned as _;

use super::attrs::{doc_attrs, docs_of};
use super::signature::self_surface_name;
use super::{Contract, Parser, SurfaceDecl};
use crate::args::Args;
use crate::schema::SchemaTypes;
use trellis_manifest::manifest::{
    ErrorDecl, ErrorRef, ReceiveDirection, ReceiveTransfer, RpcCapabilities, RpcMethod, SchemaRef,
};

impl Parser {
    pub(super) fn rpc(
        &mut self,
        attr: &syn::Attribute,
        f: &syn::ForeignItemFn,
        out: &mut Contract,
        types: &SchemaTypes,
    ) {
        let taken: Vec<String> = out.manifest.rpc.keys().cloned().collect();
        let Some(mut a) = self.args(attr, "rpc", &["capabilities", "transfer"]) else {
            return;
        };
        let name = self_surface_name(&mut a, "rpc", &taken);
        let caps = a.list("capabilities");
        let transfer = a.list("transfer");
        a.finish();
        let Some((name, name_span)) = name else {
            return;
        };
        self.spans.insert(["rpc", name.as_str()], name_span);
        let call = caps.and_then(|(k, args)| {
            let mut c = Args::new(
                "capabilities(...)",
                k.span(),
                &["call"],
                args,
                &mut self.errors,
            );
            let call = c.ident_list("call");
            c.finish();
            call
        });
        let call = self.caps(call);
        let transfer = transfer.and_then(|(k, args)| {
            let mut t = Args::new(
                "transfer(...)",
                k.span(),
                &["receive"],
                args,
                &mut self.errors,
            );
            let receive = t.bool("receive");
            t.finish();
            if receive.is_none() {
                self.errors.at(
                    k.span(),
                    "an RPC transfer hands bytes to the caller: write `transfer(receive)` \
                     (uploads are operations with `transfer(send, ...)`)",
                );
            }
            receive.map(|_| ReceiveTransfer {
                direction: ReceiveDirection::Receive,
            })
        });
        let Some((input, output, error)) = self.signature(f, true) else {
            return;
        };
        let input_at = input.as_ref().map_or(f.sig.ident.span(), |t| t.span());
        let input_schema = self.surface_schema(input.as_ref(), input_at, types, &mut out.manifest);
        let output_schema =
            self.surface_schema(Some(&output), output.span(), types, &mut out.manifest);
        let (Some(input_schema), Some(output_schema)) = (input_schema, output_schema) else {
            return;
        };
        let path = |k: &str| vec!["rpc".to_owned(), name.clone(), k.to_owned()];
        self.spans.insert(path("input"), input_at);
        self.spans.insert(path("output"), output.span());
        let errors = error.as_ref().map(|e| {
            self.spans.insert(path("errors"), e.span());
            out.manifest.errors.insert(
                e.to_string(),
                ErrorDecl {
                    ty: e.to_string(),
                    schema: Some(SchemaRef::new(e.to_string())),
                },
            );
            self.spans
                .insert(["errors", &e.to_string(), "schema"], e.span());
            vec![ErrorRef { ty: e.to_string() }]
        });
        out.manifest.rpc.insert(
            name.clone(),
            RpcMethod {
                version: self.version.clone(),
                subject: format!("rpc.{}.{name}", self.version),
                input: SchemaRef::new(input_schema),
                output: SchemaRef::new(output_schema),
                capabilities: call.map(|call| RpcCapabilities { call: Some(call) }),
                errors,
                transfer,
                internal: None,
                docs: docs_of(&f.attrs),
            },
        );
        out.rpcs.push(SurfaceDecl {
            name,
            ident: f.sig.ident.clone(),
            input,
            output,
            error,
            progress: None,
            docs: doc_attrs(&f.attrs),
        });
    }
}
