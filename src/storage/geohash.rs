//! PLACEHOLDER: its owner replaces this file.
