//! The a contrario engine, in pure Rust: NFA segmentation on the tree of level sets
//! ([`nfa`], [`tree`]), detected regions and their outlines at any threshold ([`regions`]).

pub mod linalg;
pub mod nfa;
pub mod null;
pub mod regions;
pub mod tails;
pub mod trainfree;
pub mod tree;

pub use nfa::{
    DEFAULT_TEST_SIDE, OutlineRule, SegmentOptions, Segmentation, TestCount, Upsampling,
    log10_number_of_tests, segment,
};
pub use regions::{Region, regions_at};
