# comment
RUN echo hi
FROM alpine
