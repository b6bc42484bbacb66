FROM alpine
COPY --foo=bar a b
