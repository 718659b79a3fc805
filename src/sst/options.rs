//! The table builder's view of the store's options.
//!
//! `Options` is plain data and knows nothing of tables; the builder takes
//! the fields it needs from it here.

use crate::options::Options;
use crate::sst::TableOptions;

impl From<&Options> for TableOptions {
    fn from(options: &Options) -> Self {
        TableOptions {
            block_size_bytes: options.block_size_bytes,
            bloom_bits_per_key: options.bloom_bits_per_key,
            compression: options.compression,
        }
    }
}
