"""The pages and endpoints of the web UI, one module per page (each exports `routes`)."""
