FROM alpine
RUN echo \
  # a comment inside

  hello
COPY x
