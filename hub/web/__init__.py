"""The patient verify page (DESIGN.md, issue 5): static HTML, CSS and JavaScript."""
