//! Error accumulation: report every problem at once, each at its span.

use proc_macro2::Span;

/// Collected errors of one contract.
#[derive(Default, Debug)]
pub struct Errors {
    list: Vec<syn::Error>,
}

impl Errors {
    /// Adds an error.
    pub fn push(&mut self, error: syn::Error) {
        self.list.push(error);
    }

    /// Adds an error at `span`.
    pub fn at(&mut self, span: Span, message: impl std::fmt::Display) {
        self.list.push(syn::Error::new(span, message));
    }

    /// Whether nothing was reported.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Combines everything into one error, or `Ok` when empty.
    pub fn finish(self) -> syn::Result<()> {
        let mut iter = self.list.into_iter();
        let Some(mut first) = iter.next() else {
            return Ok(());
        };
        for e in iter {
            first.combine(e);
        }
        Err(first)
    }
}
