"""The Textual dashboard: browses runs, live training, diagnostics, comparisons and studies."""
