export * from './codes.js';
export * from './rejections.js';
export * from './messages.js';
