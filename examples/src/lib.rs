//! Example workflows for durable, shared by the runnable examples and the test suites.

pub mod order;
pub mod service;
pub mod trip;
