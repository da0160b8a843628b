"""WCCPv2: a CARP box's settings and the stanzas they give Squid and the router (``settings``, with
pydantic), and the protocol itself, standard library only, for the lab's router stand-in (``wire``,
``bodies``, ``router``). This file imports nothing: the stand-in is copied with it onto its host."""
