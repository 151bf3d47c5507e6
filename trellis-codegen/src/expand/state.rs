//! Each `#[state]` marker stays a unit struct naming its public state
//! store, with the store's name and a typed opener for a
//! `trellis::state::StateClient`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::syntax::StateDecl;

/// The marker structs of the contract's public state stores.
pub(super) fn state_stores(decls: &[StateDecl]) -> TokenStream {
    let mut out = TokenStream::new();
    for decl in decls {
        let (ident, vis, docs, name, schema) =
            (&decl.ident, &decl.vis, &decl.docs, &decl.name, &decl.schema);
        let name_doc = format!("`{name}`: the store's name in `trellis.state@v1`.");
        out.extend(quote! {
            #(#docs)*
            #[derive(Debug, Clone, Copy, Default)]
            #vis struct #ident;

            impl #ident {
                #[doc = #name_doc]
                pub const NAME: &'static str = #name;

                /// This store through a public-state client, typed by its
                /// current value schema.
                pub fn open(
                    client: &::trellis::state::StateClient,
                ) -> ::trellis::state::StateStore<#schema> {
                    client.store(Self::NAME)
                }
            }
        });
    }
    out
}
