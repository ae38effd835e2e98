//! Why object storage gave no bytes (mapped to HTTP statuses with the crate's other errors, in
//! `error.rs`).

/// Why object storage gave no bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("the object store could not be reached: {0}")]
    Unreachable(String),
    #[error("the object store did not answer within {}s", .0.as_secs())]
    Timeout(std::time::Duration),
    #[error("the object store answered {0}")]
    Status(u16),
    #[error("the object changed in the store since it was listed (served again once relisted)")]
    Changed,
    #[error("the object store sent {got} bytes where {want} were asked")]
    Short { got: u64, want: u64 },
    #[error("the object store's listing could not be read: {0}")]
    Listing(String),
    #[error("{0} bytes is more than one upload may hold (5 GiB: lower max_file_size)")]
    TooLarge(u64),
}
