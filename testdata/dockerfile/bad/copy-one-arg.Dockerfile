FROM alpine
RUN true
COPY onlyone
