FROM alpine
VOLUME ["/data", ""]
