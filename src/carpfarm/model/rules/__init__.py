"""The rules an inventory must keep, each a small pure function that yields problems: on names
(``names``), on who may use the proxies (``access``) and on what spans hosts (``farm``). The
builder (``carpfarm.model.build``) runs them on what it parsed and built."""
