FROM alpine
ENV --mount=type=cache A=1
