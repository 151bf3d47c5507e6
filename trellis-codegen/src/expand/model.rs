//! The caller-side model of the contract module's own surfaces (what
//! `client` generates the `surface` markers and the typed `Client` from),
//! with types as the module declares them.

use proc_macro2::TokenStream;
use quote::quote;

use super::client::{ClientModel, EventModel, OperationModel, RpcModel};
use crate::syntax::Contract;

/// The Rust input type of a surface: the declared one, or `trellis::Empty`.
fn input_type(input: &Option<syn::Type>) -> TokenStream {
    match input {
        Some(ty) => quote!(#ty),
        None => quote!(::trellis::Empty),
    }
}

/// The caller-side model of a contract module's own surfaces.
pub(super) fn client_model(c: &Contract) -> ClientModel {
    let mut m = ClientModel::default();
    for rpc in &c.rpcs {
        let Some(method) = c.manifest.rpc.get(&rpc.name) else {
            continue;
        };
        let (input, output, docs) = (input_type(&rpc.input), &rpc.output, &rpc.docs);
        m.rpcs.push(RpcModel {
            name: rpc.name.clone(),
            subject: method.subject.clone(),
            no_input: rpc.input.is_none(),
            input,
            output: quote!(#output),
            error: rpc.error.as_ref().map(|e| quote!(#e)),
            receive: method.transfer.is_some(),
            docs: quote!(#(#docs)*),
        });
    }
    for op in &c.operations {
        let Some(spec) = c.manifest.operations.get(&op.name) else {
            continue;
        };
        let (input, output) = (input_type(&op.input), &op.output);
        m.operations.push(OperationModel {
            name: op.name.clone(),
            subject: spec.subject.clone(),
            input,
            output: quote!(#output),
            progress: match &op.progress {
                Some(p) => quote!(#p),
                None => quote!(()),
            },
            send: spec.transfer.is_some(),
        });
    }
    for event in &c.events {
        let Some(spec) = c.manifest.events.get(&event.name) else {
            continue;
        };
        let ty = &event.ident;
        m.events.push(EventModel {
            name: event.name.clone(),
            subject: spec.subject.clone(),
            params: spec.params.clone().unwrap_or_default(),
            ty: quote!(#ty),
        });
    }
    m
}
