"""Export: encode a plan as OTLP, then send it over gRPC or HTTP, or write it as OTLP/JSON.

One job per module: :mod:`.requests` (an encoded request, the encodings, the
limits, packing), :mod:`.protobuf` and :mod:`.otlp_json` (the two encoders), :mod:`.encoders`
(which encodes for each encoding),
:mod:`.convert` (what needs the protobuf library), :mod:`.transport` (the
protocols, their transports and the encoding each sends), :mod:`.deliver`
(retries and the tally), :mod:`.config` (settings) and :mod:`.file` (OTLP/JSON
lines files).
"""
