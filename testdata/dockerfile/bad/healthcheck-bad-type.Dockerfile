FROM alpine
HEALTHCHECK curl -f http://localhost/
