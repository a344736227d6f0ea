"""What the API and the pages share to answer HTTP: request dependencies (the catalogue, the
database session that commits once per request) and the one place errors become statuses."""
